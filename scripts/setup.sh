#!/usr/bin/env bash
# Installs what Spreadout needs on a fresh Debian/Ubuntu machine, skipping what is already there:
# - Mesa's Vulkan drivers (lavapipe lets wgpu run without a GPU; used by the smoke test),
# - the libraries the Tauri app links (WebKitGTK 4.1, GTK 3, librsvg, appindicator),
# - Xvfb and WebKitWebDriver for the end-to-end test,
# - cmake, libde265 and dav1d for HEIC/HEIF/AVIF (the `heic-embedded` feature builds libheif
#   1.23 with cmake, since Debian 12 and Ubuntu 22.04 carry 1.15, older than the 1.17 it needs;
#   its HEVC and AV1 decoders, both LGPL/BSD, are the distribution's; no encoder is installed,
#   so no GPL x265 can end up linked),
# - Debian's PyTorch (python3-torch, 1.13, CPU) for test.sh's smoke run of benchmarks/vs-pytorch/run.sh,
#   unless a python3 already imports torch,
# - tauri-driver (cargo), and the npm packages of package-lock.json.
# Rust (rustup) and Node.js >= 20.19 are expected to be installed already.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  mesa-vulkan-drivers libvulkan1
  build-essential pkg-config file libssl-dev
  libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev libsoup-3.0-dev
  xvfb xauth webkit2gtk-driver
  cmake libde265-dev libdav1d-dev
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# PyTorch for the side-by-side script's smoke run: Debian's CPU build is ~120 MB without its
# recommends, where the package registry's wheel is 3 GB. Asked by import, not by dpkg, so that a
# machine whose python3 already has torch gets nothing; /usr/bin/python3 is asked too because a
# python3 earlier on PATH (pyenv's) does not see Debian's packages, and benchmarks/vs-pytorch/run.sh tries it.
if ! python3 -c 'import torch' 2>/dev/null && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "installing: python3-torch"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v node >/dev/null || { echo "node not found: install Node.js 20.19 or newer" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  { echo "Node.js $(node --version) is too old: Vite needs 20.19 or newer" >&2; exit 1; }
command -v tauri-driver >/dev/null || [ -x "$HOME/.cargo/bin/tauri-driver" ] || cargo install tauri-driver --locked
# npm ci only when the lock file changed since the last install.
if ! cmp -s package-lock.json node_modules/.installed-lock; then
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.installed-lock
fi
