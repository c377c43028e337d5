# Sourced by the scripts: one persistent build folder outside the clone (Burn + wgpu take ~30 min
# to build from scratch on 2 cores), and a runtime dir so wgpu/Vulkan do not warn.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/spreadout/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/spreadout/target"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/spreadout-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
