#!/usr/bin/env bash
# The near-duplicate finder on planted copies (benchmarks/near-duplicates/README.md): the first 200 training
# images of each CIFAR-10 class from ../shared/data/cifar10-jpg.tar.gz, an edited copy planted
# beside 20 % of them (`spreadout plant-copies`: JPEG quality 15, half size, centre 80 %,
# brightness ×1.3, noise σ 12), a width-16 model trained 16 epochs on that folder (batch 64),
# then `spreadout duplicates` at the threshold it suggests, scored against planted-copies.csv
# (pair precision and recall, per edit). Not part of CI (about 40 min on two cores).
# Extra arguments go to `spreadout train` (e.g. --device cpu, --epochs 32).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
. scripts/env.sh
. benchmarks/common/cifar-sample.sh
work="${DUPLICATES_WORK:-data/duplicates}"      # git-ignored
run="${DUPLICATES_RUN:-runs/duplicates}"
spreadout() { cargo run --quiet --bin spreadout -- "$@"; }
if [ ! -f "$work/planted/planted-copies.csv" ]; then
  rm -rf "$work"
  cifar_sample "$work/originals" train:200
  spreadout plant-copies "$work/originals/train" "$work/planted" --fraction 0.2 --seed 0
fi
rm -rf "$run"
spreadout train "$work/planted" --out "$run" --epochs 16 --width 16 --image-size 32 --batch-size 64 "$@"
spreadout duplicates "$run" "$work/planted" --truth "$work/planted/planted-copies.csv" \
  --csv "$run/near-duplicates.csv" > "$run/near-duplicates.txt"
head -n 1 "$run/near-duplicates.txt"
