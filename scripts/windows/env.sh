# shellcheck shell=bash
# Sourced by the Windows scripts after scripts/env.sh: the names a cross build for
# x86_64-pc-windows-gnu needs on Debian (gcc-mingw-w64-x86-64, g++-mingw-w64-x86-64, wine64).
# Debian prefixes every MinGW tool with the target triple, but one build script in the tree
# (turso_sdk_kit's, pulled by CubeCL) runs a bare `windres` for GNU targets, so a folder of
# unprefixed links goes first on PATH. The `-posix` compilers, because libde265 and libheif are
# C++ with std::thread, which the `-win32` flavour of Debian's MinGW does not provide.
SPREADOUT_WIN_TRIPLE=x86_64-w64-mingw32
export SPREADOUT_WIN_TOOLS="${SPREADOUT_WIN_TOOLS:-/var/cache/spreadout/windows/tools}"
mkdir -p "$SPREADOUT_WIN_TOOLS"
ln -sf "/usr/bin/$SPREADOUT_WIN_TRIPLE-windres" "$SPREADOUT_WIN_TOOLS/windres"
export PATH="$SPREADOUT_WIN_TOOLS:$PATH"
export CC_x86_64_pc_windows_gnu="$SPREADOUT_WIN_TRIPLE-gcc-posix"
export CXX_x86_64_pc_windows_gnu="$SPREADOUT_WIN_TRIPLE-g++-posix"
export AR_x86_64_pc_windows_gnu="$SPREADOUT_WIN_TRIPLE-gcc-ar-posix"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$SPREADOUT_WIN_TRIPLE-gcc-posix"
# `cargo test --target x86_64-pc-windows-gnu` runs each test binary under Wine; WINEDEBUG=-all
# keeps Wine's own fixme lines out of the test output, and one prefix outside the clone is made
# once (wineboot) and reused.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
export WINEDEBUG="${WINEDEBUG:--all}"
export WINEPREFIX="${WINEPREFIX:-/var/cache/spreadout/windows/wine}"
# The static libde265 and dav1d that scripts/windows/native-libs.sh builds: libheif's CMake build
# (inside libheif-sys's build script) finds them through pkg-config, and only there, so no
# Linux library is ever offered to the Windows link.
export SPREADOUT_WIN_PREFIX="${SPREADOUT_WIN_PREFIX:-/var/cache/spreadout/windows/prefix}"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR="$SPREADOUT_WIN_PREFIX/lib/pkgconfig"
export CMAKE_PREFIX_PATH="$SPREADOUT_WIN_PREFIX"
