#!/usr/bin/env bash
# HEIC beside JPEG, the same pictures in both (benchmarks/common/make_photos.py, quality 90 each):
# 1. decode rate of 12-megapixel photos (4032×3024, an iPhone's size) into the 224 px training
#    cache, on one thread and on all of them (`spreadout bench --no-train`'s decode rows);
# 2. agreement of embeddings: a model trained briefly on 3000 CIFAR-10 training images embeds 200
#    test images enlarged 4× (128 px) and saved both ways; each picture's two embeddings are
#    compared, beside its nearest other picture (benchmarks/heic/compare_embeddings.py).
# Photos are made once under /var/cache/spreadout/heic-vs-jpeg (or $SPREADOUT_HEIC_DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
. benchmarks/common/photos.sh
. benchmarks/common/cifar-sample.sh
dir=${SPREADOUT_HEIC_DIR:-/var/cache/spreadout/heic-vs-jpeg}
for format in jpeg heic; do
  make_photos "$dir/12mp-$format" 24 --size 4032x3024 --format "$format" --seed 1
done
cargo build --quiet --bin spreadout --features spreadout-app/custom-protocol --workspace
bin=$CARGO_TARGET_DIR/debug/spreadout
echo "## 12 MP photos into the 224 px cache ($(du -sh "$dir/12mp-jpeg" | cut -f1) of JPEG, $(du -sh "$dir/12mp-heic" | cut -f1) of HEIC)"
for threads in 1 "$(nproc)"; do
  for format in jpeg heic; do
    echo "$format, $threads thread(s):"
    RAYON_NUM_THREADS=$threads "$bin" bench --no-train --device cpu --photos "$dir/12mp-$format" --data-sizes 224 | grep decode
  done
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "## embeddings of 200 CIFAR-10 test images (enlarged to 128 px) as JPEG and as HEIC, quality 90 each"
echo "## (32 px, width 16, 5 epochs on 3000 training images)"
cifar_sample "$work/cifar" train:300 test:20
"$bin" train "$work/cifar/train" --out "$work/run" --epochs 5 --width 16 --image-size 32 --batch-size 128 \
  --device cpu --cache-dir "$work/cache" > "$work/train.log" 2>&1
for format in jpeg heic; do
  "$venv/bin/python" benchmarks/heic/reencode.py "$work/cifar/test" "$work/$format" --format "$format" --scale 4
  "$bin" embed "$work/run" "$work/$format" --out "$work/$format.safetensors" --device cpu --cache-dir "$work/cache" > /dev/null
done
"$venv/bin/python" benchmarks/heic/compare_embeddings.py "$work/jpeg.safetensors" "$work/heic.safetensors"
