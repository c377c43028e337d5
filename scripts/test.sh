#!/usr/bin/env bash
# The README's test command: installs what is missing, holds the line on formatting and lints
# (`cargo fmt --check`, `cargo clippy -D warnings`, the same feature selection as the build so no
# dependency is checked twice), then runs every test: the UI's unit and
# component tests (Vitest, mock backend), every Rust test of the workspace, a smoke run of
# scripts/bench-vs-pytorch.sh (smallest configuration, Debian's PyTorch) and the end-to-end
# test of the real app under Xvfb. Ends with its wall time and one line adding up the three
# runners' counts, `total: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup.sh
. scripts/env.sh
cargo fmt --all --check
scripts/build.sh >/dev/null
# Clippy's type-checked dependencies never serve a build, so they live in a folder of their own
# beside the build's, persistent like it.
CARGO_TARGET_DIR="$CARGO_TARGET_DIR-check" \
  cargo clippy --workspace --all-targets --features spreadout-app/custom-protocol -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
NO_COLOR=1 npx vitest run 2>&1 | tee -a "$log"
cargo test --workspace --all-targets --features spreadout-app/custom-protocol -- --test-threads=2 2>&1 | tee -a "$log"
# The side-by-side benchmark in its smallest configuration, against Debian's PyTorch 1.13 on the
# CPU (setup.sh installs it): a smoke test that the script, `spreadout bench --json` and
# bench/pytorch_reference.py still fit together, not a speed figure. It must print the Spreadout
# row, the PyTorch row and a finite ratio (the script swallows a failed Spreadout run and prints
# `nan` for a missing side). Not tee'd into $log: the total below counts the test runners' lines.
bench_start=$(date +%s)
bench=$(SPREADOUT_BIN=$CARGO_TARGET_DIR/debug/spreadout scripts/bench-vs-pytorch.sh --device cpu \
  --widths 2 --batch-size 4 --image-size 16 --steps 1 --warmup 0 --rounds 1 2>&1) ||
  { echo "$bench"; echo "scripts/bench-vs-pytorch.sh failed" >&2; exit 1; }
echo "$bench"
for expected in '^\| w2, 16 px, batch 4x2, f32 \| ' '^\| w2, 16 px, batch 4x2, fp32 \| ' '^ratio f32 w2 16px: [0-9]+\.[0-9]+$'; do
  grep -Eq -- "$expected" <<<"$bench" ||
    { echo "scripts/bench-vs-pytorch.sh printed no line matching $expected (Spreadout row, PyTorch row, finite ratio)" >&2; exit 1; }
done
echo "bench-vs-pytorch smoke run: $(( $(date +%s) - bench_start )) s"
scripts/e2e.sh 2>&1 | tee -a "$log"
echo "test wall time: $(( $(date +%s) - start )) s"
# `set -o pipefail` has already stopped the script if any runner failed; count what ran.
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  /^ *Tests +[0-9]+ passed/ { passed += $2 }
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;/) passed += $(i-1); if ($i ~ /^failed;/) failed += $(i-1) } }
  /[0-9]+ passing/ { for (i = 1; i <= NF; i++) if ($i == "passing") passed += $(i-1) }
  /[0-9]+ failing/ { for (i = 1; i <= NF; i++) if ($i == "failing") failed += $(i-1) }
  END { printf "total: %d passed, %d failed\n", passed, failed }'
