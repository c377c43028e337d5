#!/usr/bin/env bash
# Installs what Spreadout needs on a fresh Debian/Ubuntu machine, skipping what is already there:
# Mesa's Vulkan drivers (lavapipe: lets wgpu run without a GPU, used by the smoke test) and
# the Rust toolchain's cargo (expected from rustup).
set -euo pipefail
packages=(mesa-vulkan-drivers libvulkan1)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
