#!/usr/bin/env bash
# Builds the UI (type-checked) and every crate of the workspace the way the tests build them, so
# the app, the CLI and the tests share one set of compiled dependencies (a different package or
# feature selection would rebuild Burn: ~30 min on 2 cores). The workspace's own crates are linted
# as they compile (clippy-driver with `-D warnings`, see scripts/env.sh): a lint fails the build.
# Prints the app binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
npm run --silent build >&2
cargo build --workspace --all-targets --features spreadout-app/custom-protocol >&2
echo "$CARGO_TARGET_DIR/debug/spreadout-app"
