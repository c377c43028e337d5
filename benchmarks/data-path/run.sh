#!/usr/bin/env bash
# Decode + augment throughput on real JPEG photos, the way a training run prepares them:
# CIFAR-10's test JPEGs (../shared/data, 32×32) at 32 px, and 2000 real photographs exported
# as 640×480 JPEGs (benchmarks/common/make_photos.py, from the photos scikit-image ships) at 224 px.
# Prints `spreadout bench`'s table rows. The photos are made once, in
# /var/cache/spreadout/bench-photos (or $SPREADOUT_PHOTOS). --write-page also puts the table into
# benchmarks/data-path/README.md's results section, with the command, machine, commit and date
# (benchmarks/common/page.sh).
set -euo pipefail
# The page records the command as it was given.
command="benchmarks/data-path/run.sh${*:+ $*}"
write_page=""
case "${1:-}" in
  --write-page) write_page=1 ;;
  "") ;;
  *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
. scripts/env.sh
. benchmarks/common/photos.sh
photos=${SPREADOUT_PHOTOS:-/var/cache/spreadout/bench-photos}
make_photos "$photos" 2000
cifar=$(mktemp -d)
table=$(mktemp)
trap 'rm -rf "$cifar" "$table"' EXIT
tar xzf ../shared/data/cifar10-jpg.tar.gz -C "$cifar"
test_dir=$(find "$cifar" -maxdepth 3 -type d -name test | head -1)
cargo build --quiet --bin spreadout --features spreadout-app/custom-protocol --workspace
bin=$CARGO_TARGET_DIR/debug/spreadout
{
  "$bin" bench --no-train --neighbors 0 --photos "$test_dir" --data-sizes 32
  "$bin" bench --no-train --neighbors 0 --photos "$photos" --data-sizes 224 | tail -n +3
} | tee "$table"
if [ -n "$write_page" ]; then
  . benchmarks/common/page.sh
  write_page benchmarks/data-path/README.md "$table" "$command"
fi
