#!/usr/bin/env bash
# End-to-end test of the real app under Xvfb: tauri-driver + WebKitWebDriver + WebdriverIO
# (ui/e2e/). Expects scripts/build.sh to have run; screenshots go to docs/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export SPREADOUT_APP_BINARY="$CARGO_TARGET_DIR/debug/spreadout-app"
[ -x "$SPREADOUT_APP_BINARY" ] || { echo "build the app first: scripts/build.sh" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
start=$(date +%s)
xvfb-run --auto-servernum --server-args="-screen 0 1600x1000x24" npx wdio run ui/e2e/wdio.conf.js
echo "end-to-end test wall time: $(( $(date +%s) - start )) s"
