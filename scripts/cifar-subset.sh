#!/usr/bin/env bash
# Trains on a CIFAR-10 subset from ../shared/data/cifar10-jpg.tar.gz: the first 500 training and
# 100 test images of each class, 32 px, width 16, 10 epochs; prints kNN accuracy after every epoch.
# Not part of CI. Extra arguments go to `spreadout train` (e.g. --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
archive="${CIFAR_ARCHIVE:-../shared/data/cifar10-jpg.tar.gz}"
work="${CIFAR_WORK:-data/cifar10-subset}"      # git-ignored
run="${CIFAR_RUN:-runs/cifar10-subset}"
if [ ! -d "$work/train" ]; then
  full="$(mktemp -d)"
  trap 'rm -rf "$full"' EXIT
  tar -xzf "$archive" -C "$full"
  root="$(dirname "$(find "$full" -maxdepth 3 -type d -name train | head -n1)")"
  for split in train:500 test:100; do
    name="${split%%:*}" count="${split##*:}"
    for class_dir in "$root/$name"/*/; do
      class="$(basename "$class_dir")"
      mkdir -p "$work/$name/$class"
      find "$class_dir" -type f | sort | sed -n "1,${count}p" | xargs -I{} cp {} "$work/$name/$class/"
    done
  done
fi
rm -rf "$run"
cargo run --bin spreadout -- train "$work/train" --eval-test "$work/test" --out "$run" \
  --epochs 10 --width 16 --image-size 32 --batch-size 128 "$@"
