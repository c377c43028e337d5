#!/usr/bin/env bash
# The scale benchmark on a generated library of N small images (issue 39: a million photos):
# every stage a person meets, each one `spreadout` command timed with GNU time's wall clock and
# maximum resident set size. Prints a Markdown table.
#
#   benchmarks/scale/run.sh --generate N [--size PX] [--keep DIR] [--model RUN] [--write-page]
#
# The images come from benchmarks/scale/generate.py (SIZE x SIZE PNGs, 16 px by default, a
# thousand to a folder, every tenth a slightly recoloured copy of the one before), written to a
# temporary folder beside the cache (or DIR with --keep, reused when it already holds them).
# Without --model, a width-8 network is trained for one epoch on the first thousand images to
# embed with (how good it is does not change what the stages cost). Every stage runs on the CPU.
# --write-page puts the table into benchmarks/scale/library.md's results section.
set -euo pipefail
command="benchmarks/scale/run.sh${*:+ $*}"
[ "${1:-}" = --generate ] || { echo "usage: benchmarks/scale/run.sh --generate N [--size PX] [--keep DIR] [--model RUN] [--write-page]" >&2; exit 2; }
images=${2:?the number of images to generate}
shift 2
size=16 keep= model= write_page=
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --write-page) write_page=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SPREADOUT_BIN:-$root/target/debug/spreadout}
[ -x "$bin" ] || bin=/var/cache/spreadout/target/debug/spreadout
# On the same disk as the cache, not in a RAM-backed /tmp: the scan must read a real disk.
work=$(mktemp -d "${SPREADOUT_SCALE_TMP:-/var/tmp}/spreadout-scale.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SPREADOUT_CACHE_DIR=$work/cache SPREADOUT_DATA_DIR=$work/data
dir=${keep:-$work/images}

# Runs a command under GNU time; prints "seconds<TAB>peak MiB".
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" || {
    cat "$work/err" >&2; exit 1; }
  read -r seconds kib < "$work/time"
  printf '%s\t%s\n' "$seconds" "$((kib / 1024))"
}
# The seconds column of the one row a `spreadout bench` printed.
bench_seconds() { awk -F'|' '/^\| / && !/^\| task/ { gsub(/ /, "", $6); print $6; exit }' "$work/out"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; binary: $bin; images in $dir"
echo
{
  echo "| step | seconds | peak resident MiB |"
  echo "|---|---:|---:|"
  if [ -z "$(ls -A "$dir" 2>/dev/null)" ]; then
    IFS=$'\t' read -r s m < <(measure python3 "$root/benchmarks/scale/generate.py" "$dir" --images "$images" --size "$size")
    echo "| (setup) generate $images PNGs of ${size}×$size px, $(du -sm "$dir" | cut -f1) MiB on disk | $s | $m |"
  fi
  IFS=$'\t' read -r s m < <(measure "$bin" cache --fill "$dir" --image-size 32)
  echo "| scan and cache $images files for 32 px (first load) | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" cache --fill "$dir" --image-size 32)
  echo "| scan again, every file from the cache (second load) | $s | $m |"
  echo "| cache on disk | $(du -sm "$work/cache" | cut -f1) MiB ($(( $(du -sb "$work/cache" | cut -f1) / images )) bytes an image) | |"
  if [ -z "$model" ]; then
    first=$(find "$dir" -mindepth 2 -maxdepth 2 -type d | sort | head -1)
    IFS=$'\t' read -r s m < <(measure "$bin" train "$first" --out "$work/run" --epochs 1 \
      --image-size 32 --width 8 --batch-size 64 --device cpu)
    echo "| (setup) train width 8 for one epoch on $(ls "$first" | wc -l) of them | $s | $m |"
    model=$work/run
  fi
  IFS=$'\t' read -r s m < <(measure "$bin" embed "$model" "$dir" --out "$work/e.safetensors" --device cpu)
  echo "| embed $images images (pixels from the cache), CPU | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" embed "$model" "$dir" --out "$work/e.safetensors" --device cpu)
  echo "| embed again (embeddings from the cache) | $s | $m |"
  query=$(find "$dir" -name '*.png' -print -quit)
  IFS=$'\t' read -r s m < <(measure "$bin" neighbors "$work/e.safetensors" "$query" --k 10)
  echo "| neighbour query: whole command (reads the ${images}-row file) | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" bench --no-train --no-data --neighbors "$images" --device cpu)
  echo "| neighbour query alone over $images embeddings (median of 21; \`spreadout bench --neighbors\`) | $(bench_seconds) | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" duplicates "$dir" --json)
  echo "| near-duplicates by perceptual hashes: cache at the hash size, hash, calibrate, search | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" duplicates "$dir" --json)
  echo "| the same again (hashes kept) | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" bench --no-train --no-data --duplicates "$images" --device cpu)
  echo "| near-duplicates by the embedding: inverted file over $images library-like embeddings × 3 views (\`spreadout bench --duplicates\`) | $(bench_seconds) | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" clusters "$model" "$dir" --device cpu)
  echo "| clusters: k-means, the suggested k, embeddings from the cache | $s | $m |"
  IFS=$'\t' read -r s m < <(measure "$bin" bench --no-train --no-data --map "$images" --device cpu)
  echo "| UMAP map of $images embeddings (10 000 laid out, the rest placed; \`spreadout bench --map\`) | $(bench_seconds) | $m |"
} | tee "$work/table.md"
if [ -n "$write_page" ]; then
  . "$root/benchmarks/common/page.sh"
  (cd "$root" && write_page benchmarks/scale/library.md "$work/table.md" "$command (binary: $bin)")
fi
