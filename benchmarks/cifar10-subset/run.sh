#!/usr/bin/env bash
# Trains on a CIFAR-10 subset from ../shared/data/cifar10-jpg.tar.gz: the first 500 training and
# 100 test images of each class, 32 px, width 16, 10 epochs; prints kNN accuracy after every epoch.
# Not part of CI. Extra arguments go to `spreadout train` (e.g. --device cpu).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
. scripts/env.sh
. benchmarks/common/cifar-sample.sh
work="${CIFAR_WORK:-data/cifar10-subset}"      # git-ignored
run="${CIFAR_RUN:-runs/cifar10-subset}"
[ -d "$work/train" ] || cifar_sample "$work" train:500 test:100
rm -rf "$run"
cargo run --bin spreadout -- train "$work/train" --eval-test "$work/test" --out "$run" \
  --epochs 10 --width 16 --image-size 32 --batch-size 128 "$@"
