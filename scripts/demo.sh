#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run `spreadout demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo run --bin spreadout -- demo "$@"
