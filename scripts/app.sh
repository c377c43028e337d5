#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and opens the desktop app with
# the built-in demo data set loaded and ready to train. Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
app=$(scripts/build.sh)
. scripts/env.sh
exec "$app" --demo "$@"
