#!/usr/bin/env bash
# Correctness before speed: the production training run (`spreadout train`) on the GPU against the
# same run on the CPU (Burn's flex backend), same seed, for every method and loss variant, then
# the two exported models compared value by value (benchmarks/pytorch/compare_weights.py, largest
# |cpu - gpu| / (1 + |cpu|)). Data: 2 classes x 4 random 16 px PNGs (benchmarks/pytorch/parity_data.py; `spreadout
# demo` has no data-only mode and its set is far larger); 1 epoch, batch 4, width 2, dim 8: two SGD
# steps, so that the second one uses the momentum the first left. Not more: at this size the
# features start almost collapsed (cosine 0.9999 between images) and Eq. 7 then amplifies tiny
# differences step after step. In the PyTorch reference a 1e-6 relative nudge of the initial
# weights moves the weights after 2 steps by 5e-5, after 3 by 4e-3 and after 4 by 3e-2, so beyond
# 2 steps the check would fail two correct implementations whose roundings differ (lavapipe
# against flex: 1.4e-6 after 1 step, 1.3e-5 after 2, 8.5e-2 after 4).
#
#   SPREADOUT_BIN=path/to/spreadout benchmarks/gpu-parity/run.sh [--write-page] [CASE...]   # default: every case
#   SPREADOUT_BIN=... SPREADOUT_PARITY_DEVICE=0 benchmarks/gpu-parity/run.sh spreadout npsoftmax
#
# Cases: spreadout, spreadout-hard, spreadout-easy, nearest, npsoftmax, nce, exemplar, triplet,
# triplet-hard (tolerance 2e-3) and f16 (GPU f16 against CPU f32, the flex backend refusing f16;
# tolerance 5e-2). SPREADOUT_PARITY_DEVICE: the `--device` of the GPU side (default gpu; an adapter
# number such as 0 picks lavapipe on a machine without a GPU, slow: each case compiles its kernels).
# Prints a Markdown table (case, largest difference, tensor, pass/FAIL) on stdout, progress on
# stderr, and exits 1 if any case failed (a failed training run counts as a failed case). Called
# by scripts/gpu-check.sh; needs python3 (standard library only). SPREADOUT_PARITY_WORK=DIR keeps
# the data, the runs (DIR/CASE-cpu, DIR/CASE-gpu, with their logs) and the image cache in DIR, for
# looking into a failed case; without it they go to a temporary folder removed at the end.
# --write-page also puts the table into benchmarks/gpu-parity/README.md's results section, with the
# command, machine, commit and date (benchmarks/common/page.sh).
set -euo pipefail
# The page records the command as it was given.
command="${SPREADOUT_PARITY_DEVICE:+SPREADOUT_PARITY_DEVICE=$SPREADOUT_PARITY_DEVICE }benchmarks/gpu-parity/run.sh${*:+ $*}"
root=$(cd "$(dirname "$0")/../.." && pwd)
spreadout=${SPREADOUT_BIN:?set SPREADOUT_BIN to the spreadout binary}
device=${SPREADOUT_PARITY_DEVICE:-gpu}
all_cases=(spreadout spreadout-hard spreadout-easy nearest npsoftmax nce exemplar triplet triplet-hard f16)
write_page=""
[ "${1:-}" = --write-page ] && { write_page=1; shift; }
cases=("$@")
((${#cases[@]})) || cases=("${all_cases[@]}")

# Each case: the options both sides train with, and the GPU side's extra ones.
case_options() {
  case "$1" in
    spreadout) echo "--method spreadout --negatives all" ;;
    spreadout-hard) echo "--method spreadout --negatives hard" ;;
    spreadout-easy) echo "--method spreadout --negatives easy" ;;
    nearest) echo "--method spreadout --positive nearest" ;;
    npsoftmax | nce | exemplar | triplet | triplet-hard) echo "--method $1" ;;
    f16) echo "--method spreadout" ;;
    *) echo "unknown case $1 (known: ${all_cases[*]})" >&2; return 2 ;;
  esac
}
for name in "${cases[@]}"; do case_options "$name" >/dev/null; done

if [ -n "${SPREADOUT_PARITY_WORK:-}" ]; then
  work=$SPREADOUT_PARITY_WORK
  mkdir -p "$work"
  # A run folder that exists would be resumed or refused, not trained afresh.
  for name in "${cases[@]}"; do rm -rf "$work/$name-cpu" "$work/$name-gpu"; done
  rm -rf "$work/data"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
# A private image cache, so that no earlier run's preprocessed pixels (or a concurrent one) are
# read; the kernel cache stays where XDG_CACHE_HOME puts it, shared by the cases, which is what
# keeps the later cases from compiling every kernel again.
export SPREADOUT_CACHE_DIR=$work/image-cache
python3 "$root/benchmarks/pytorch/parity_data.py" "$work/data" --classes 2 --per-class 4 --test-per-class 2 --size 16 >&2

failed=0
rows=()
for name in "${cases[@]}"; do
  read -r -a options <<<"$(case_options "$name")"
  tolerance=2e-3 gpu_extra=()
  # f16 convolutions round every product to 11 bits; 5e-2 still catches a wrong kernel.
  [ "$name" = f16 ] && tolerance=5e-2 gpu_extra=(--precision f16)
  result=""
  for side in cpu gpu; do
    side_device=cpu extra=()
    [ "$side" = gpu ] && side_device=$device extra=("${gpu_extra[@]}")
    echo "parity $name: the $side side, training on --device $side_device" >&2
    if ! "$spreadout" train "$work/data/train" --out "$work/$name-$side" --epochs 1 --batch-size 4 --width 2 \
      --image-size 16 --dim 8 --seed 0 --device "$side_device" "${options[@]}" ${extra[@]+"${extra[@]}"} \
      >"$work/$name-$side.log" 2>&1; then
      # The error line, not the backtrace that RUST_BACKTRACE may add after it.
      grep -m1 '^Error' "$work/$name-$side.log" >&2 || tail -5 "$work/$name-$side.log" >&2
      result="| $name | – | – | FAIL (training on $side_device failed) |"
      break
    fi
  done
  if [ -z "$result" ]; then
    line=$(python3 "$root/benchmarks/pytorch/compare_weights.py" "$work/$name-cpu/model.safetensors" \
      "$work/$name-gpu/model.safetensors" --tolerance "$tolerance" 2>&1) && verdict=pass || verdict=FAIL
    echo "parity $name: $line" >&2
    # `largest difference X in TENSOR (tolerance T): ...`
    read -r _ _ difference _ tensor _ <<<"$line"
    [[ $line == "largest difference "* ]] || difference="–" tensor="– ($line)"
    result="| $name | $difference | $tensor | $verdict (tolerance $tolerance) |"
  fi
  [[ $result == *"| FAIL"* ]] && failed=1
  rows+=("$result")
done

table=$work/table.md
{
  echo "| case | largest difference | tensor | result |"
  echo "|---|---:|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$table"
if [ -n "$write_page" ]; then
  . "$root/benchmarks/common/page.sh"
  (cd "$root" && write_page benchmarks/gpu-parity/README.md "$table" "$command")
fi
exit "$failed"
