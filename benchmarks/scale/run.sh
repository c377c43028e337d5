#!/usr/bin/env bash
# The scale benchmark of issue 8: one folder through the whole product, timed, with peak resident
# memory, and the cache's disk use. Prints a Markdown table.
#
#   benchmarks/scale/run.sh DIR [--size PX] [--width W] [--batch M] [--model RUN] [--write-page]
#   benchmarks/scale/run.sh --generate N [--size PX] [--keep DIR] [--model RUN] [--write-page]
#
# The second form generates a library of N small images first and times every stage on it,
# near-duplicates, clusters and the map included (benchmarks/scale/library.sh).
#
# --model RUN skips the training epoch and embeds with that run's model (for folders too large to
# train an epoch on here). --write-page also puts the table into benchmarks/scale/README.md's
# results section, with the command, machine, commit and date (benchmarks/common/page.sh).
#
# Rows: the first load (decoding DIR into a fresh cache), the second (from the cache), one
# training epoch, embedding the folder with the trained model (pixels cached, embeddings not), the
# same again (everything cached), a neighbour query over the embeddings, the cache on disk. Peak memory is GNU time's
# maximum resident set size of each command. Build first: cargo build --release.
set -euo pipefail
[ "${1:-}" != --generate ] || exec "$(dirname "$0")/library.sh" "$@"
# The page records the command as it was given, before the options are parsed away.
command="benchmarks/scale/run.sh${*:+ $*}"
dir=${1:?usage: benchmarks/scale/run.sh DIR [--size PX] [--width W] [--batch M] [--model RUN] [--write-page]}
shift
size=96 width=16 batch=64 model= write_page=
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --width) width=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --write-page) write_page=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${SPREADOUT_BIN:-target/release/spreadout}
[ -x "$bin" ] || bin=/var/cache/spreadout/target/release/spreadout
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=$work/cache
export SPREADOUT_CACHE_DIR=$cache

# Runs a command under GNU time; prints "seconds<TAB>peak MiB".
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" || {
    cat "$work/err" >&2; exit 1; }
  read -r seconds kib < "$work/time"
  printf '%s\t%s\n' "$seconds" "$((kib / 1024))"
}

images=$(find -L "$dir" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | wc -l)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; binary: $bin"
echo
# The table, also kept for the page.
{
  echo "| step | seconds | peak resident MiB |"
  echo "|---|---:|---:|"
  IFS=$'\t' read -r s m < <(measure "$bin" cache --fill "$dir" --image-size "$size")
  echo "| first load: $images files decoded into a new cache for $size px | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" cache --fill "$dir" --image-size "$size")
  echo "| second load: the same folder from the cache | $s | $m |"
  if [ -z "$model" ]; then
    IFS=$'\t' read -r s m < <(measure "$bin" train "$dir" --out "$work/run" --epochs 1 \
      --image-size "$size" --width "$width" --batch-size "$batch" --device cpu)
    echo "| 1 training epoch at $size px, ResNet-18 width $width, batch $batch×2 (with its evaluation) | $s | $m |"
    model=$work/run
  fi
  IFS=$'\t' read -r s m < <(measure "$bin" embed "$model" "$dir" --out "$work/e.safetensors" --device cpu)
  echo "| embed the folder (pixels from the cache) | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" embed "$model" "$dir" --out "$work/e.safetensors" --device cpu)
  echo "| embed again (pixels and embeddings from the cache) | $s | $m |"
  query=$(find -L "$dir" -type f \( -iname '*.jpg' -o -iname '*.png' \) -print -quit)
  IFS=$'\t' read -r s m < <(measure "$bin" neighbors "$work/e.safetensors" "$query" --k 10)
  echo "| neighbour query, $images embeddings (whole command) | $s | $m |"
  echo "| cache on disk | $(du -sm "$cache" | cut -f1) MiB | |"
} | tee "$work/table.md"
if [ -n "$write_page" ]; then
  root=$(cd "$(dirname "$0")/../.." && pwd)
  . "$root/benchmarks/common/page.sh"
  # The binary's build is part of what was measured.
  (cd "$root" && write_page benchmarks/scale/README.md "$work/table.md" "$command (binary: $bin)")
fi
