#!/usr/bin/env bash
# The headless equivalent of scripts/app.sh: installs what is missing, builds, and runs
# `spreadout demo` (generate the demo data set, train, print kNN per epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
. scripts/env.sh
exec "$CARGO_TARGET_DIR/debug/spreadout" demo "$@"
