#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every test: the UI's unit and
# component tests (Vitest, mock backend), every Rust test of the workspace, and the end-to-end
# test of the real app under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
. scripts/env.sh
npx vitest run
cargo test --workspace --all-targets --features spreadout-app/custom-protocol -- --test-threads=2
scripts/e2e.sh
