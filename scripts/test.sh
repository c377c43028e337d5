#!/usr/bin/env bash
# The README's test command: installs what is missing, holds the line on formatting and lints
# (`cargo fmt --check`, `cargo clippy -D warnings`, the same feature selection as the build so no
# dependency is checked twice), then runs every test: the UI's unit and
# component tests (Vitest, mock backend), every Rust test of the workspace, and the end-to-end
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
scripts/e2e.sh 2>&1 | tee -a "$log"
echo "test wall time: $(( $(date +%s) - start )) s"
# `set -o pipefail` has already stopped the script if any runner failed; count what ran.
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  /^ *Tests +[0-9]+ passed/ { passed += $2 }
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;/) passed += $(i-1); if ($i ~ /^failed;/) failed += $(i-1) } }
  /[0-9]+ passing/ { for (i = 1; i <= NF; i++) if ($i == "passing") passed += $(i-1) }
  /[0-9]+ failing/ { for (i = 1; i <= NF; i++) if ($i == "failing") failed += $(i-1) }
  END { printf "total: %d passed, %d failed\n", passed, failed }'
