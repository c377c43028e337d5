#!/usr/bin/env bash
# The README's test command. First the gates, which stop it at once: installs what is missing,
# checks its own test counting (scripts/count-tests.sh --self-check), holds the line on formatting
# (`cargo fmt --check`) and builds, which lints too: scripts/env.sh has clippy-driver compile the
# workspace's crates with `-D warnings`, so a lint stops the build and no dependency is compiled
# or checked twice. Then every suite runs to its end, each whatever the ones before it did: the
# UI's unit and component tests (Vitest, mock backend), every Rust test of the workspace
# (`cargo test --no-fail-fast`), a smoke run of benchmarks/vs-pytorch/run.sh (smallest
# configuration, Debian's PyTorch; skipped when no python imports torch) and the end-to-end test
# of the real app under Xvfb. Ends with its wall time and scripts/count-tests.sh's total over the
# four, `total: N passed, M failed, K skipped`, then a line naming each skipped test and why, and
# one for each suite or test binary that failed without reporting a failed test (a crash, a build
# failure). Exits non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup.sh
scripts/count-tests.sh --self-check
. scripts/env.sh
[ "${RUSTC_WORKSPACE_WRAPPER:-}" = clippy-driver ] ||
  { echo "clippy is not installed, and the build is the lint: rustup component add clippy" >&2; exit 1; }
cargo fmt --all --check
# Every target of the workspace (lib, bins, tests, examples), built and linted; `cargo test` below
# finds them all fresh.
scripts/build.sh >/dev/null

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
# Runs one suite to its end: its output to the terminal and to $results/NAME.log, its exit status
# to $results/NAME.status, for scripts/count-tests.sh.
suite() {
  local name=$1
  shift
  set +e
  "$@" 2>&1 | tee "$results/$name.log"
  echo "${PIPESTATUS[0]}" >"$results/$name.status"
  set -e
}

# The verbose reporter lists every test, so the count can name the skipped ones.
NO_COLOR=1 suite vitest npx vitest run --reporter=verbose
# A Rust test that returns early for want of something on this machine records why here
# (tests/common/skip.rs); the count moves it from passed to skipped.
: >"$results/skips"
SPREADOUT_SKIPS="$results/skips" suite cargo cargo test --workspace --all-targets \
  --features spreadout-app/custom-protocol --no-fail-fast -- --test-threads=2

# The side-by-side benchmark in its smallest configuration, against Debian's PyTorch 1.13 on the
# CPU (setup.sh installs it): a smoke test that the script, `spreadout bench --json` and
# benchmarks/pytorch/step.py still fit together, not a speed figure. It must print the Spreadout
# row, the PyTorch row and a finite ratio (the script swallows a failed Spreadout run and prints
# `nan` for a missing side). Without a python that imports torch it is skipped rather than left
# to benchmarks/vs-pytorch/run.sh, which would fetch 3 GB of torch from the package registry. Its last line
# is the verdict scripts/count-tests.sh reads.
bench_smoke() {
  local verdict="bench-vs-pytorch smoke run:" bench_start output status expected
  if [ -z "${SPREADOUT_PYTHON:-}" ] && ! python3 -c 'import torch' 2>/dev/null &&
    ! /usr/bin/python3 -c 'import torch' 2>/dev/null &&
    ! "${SPREADOUT_VENV:-/var/cache/spreadout/bench-venv}/bin/python" -c 'import torch' 2>/dev/null; then
    echo "$verdict skipped: no python with torch"
    return
  fi
  bench_start=$(date +%s)
  output=$(SPREADOUT_BIN=$CARGO_TARGET_DIR/debug/spreadout benchmarks/vs-pytorch/run.sh --device cpu \
    --widths 2 --batch-size 4 --image-size 16 --steps 1 --warmup 0 --rounds 1 2>&1) ||
    { status=$?; echo "$output"; echo "$verdict failed: benchmarks/vs-pytorch/run.sh exited with status $status"; return 1; }
  echo "$output"
  echo "bench-vs-pytorch smoke run took $(($(date +%s) - bench_start)) s"
  for expected in '^\| w2, 16 px, batch 4x2, f32 \| ' '^\| w2, 16 px, batch 4x2, fp32 \| ' '^ratio f32 w2 16px: [0-9]+\.[0-9]+$'; do
    grep -Eq -- "$expected" <<<"$output" ||
      { echo "$verdict failed: no line matching $expected (Spreadout row, PyTorch row, finite ratio)"; return 1; }
  done
  echo "$verdict passed"
}
suite bench bench_smoke

suite e2e scripts/e2e.sh
echo "test wall time: $(($(date +%s) - start)) s"
scripts/count-tests.sh "$results"
