# Sourced by the scripts: one persistent build folder outside the clone (Burn + wgpu take ~30 min
# to build from scratch on 2 cores), and a runtime dir so wgpu/Vulkan do not warn.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/spreadout/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$HOME/.cache/spreadout/target"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/spreadout-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# Every build of the workspace's own crates is also their lint, as `cargo clippy -- -D warnings`
# would run it: cargo hands the workspace members (and them only) to clippy-driver, a rustc with
# clippy's lints, which reads its flags from CLIPPY_ARGS (each ended by `__CLIPPY_HACKERY__`, as
# cargo-clippy passes them). A warning of rustc's or clippy's fails the build. The dependencies
# are compiled once, by rustc, for the build and the lint alike; `cargo clippy` would type-check
# all of Burn, wgpu and Tauri a second time. Every script sets the same two variables, so their
# builds share one set of artefacts (both are part of the workspace crates' fingerprints). Left
# unset where clippy is not installed (`rustup component add clippy`); scripts/test.sh then stops.
if clippy-driver -V >/dev/null 2>&1; then
  export RUSTC_WORKSPACE_WRAPPER=clippy-driver
  export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
fi
