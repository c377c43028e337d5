#!/usr/bin/env bash
# Builds Spreadout for 64-bit Windows on Debian, cross-compiling for x86_64-pc-windows-gnu:
# `spreadout.exe` (engine and CLI, every default feature, HEIC included), the app, and the NSIS
# installer `Spreadout-<version>-setup.exe`, all in $CARGO_TARGET_DIR/windows-dist. Checks that
# each .exe imports only DLLs every Windows has (plus WebView2Loader.dll, shipped beside the app),
# so nothing from MinGW or this machine is missing on a person's computer.
#
#   bash scripts/windows/build.sh
#
# Needs (Debian): gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 nsis meson ninja-build nasm dpkg-dev
# cmake, and `rustup target add x86_64-pc-windows-gnu`. A cold run is a second full build of the
# workspace for another target (~60 min on two cores, see docs/development.md), which is why it
# is a script of its own and not a step of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
. scripts/windows/env.sh
target=x86_64-pc-windows-gnu
started=$SECONDS

rustup target list --installed 2>/dev/null | grep -qx "$target" || {
  echo "the Rust standard library for $target is missing: rustup target add $target" >&2
  exit 1
}
for tool in "$CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER" makensis x86_64-w64-mingw32-objdump x86_64-w64-mingw32-strip; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 nsis" >&2
    exit 1
  }
done

bash scripts/windows/native-libs.sh
npm run --silent build >&2
cargo build --release --target "$target" --workspace --features spreadout-app/custom-protocol --bins

built="$CARGO_TARGET_DIR/$target/release"
dist="$CARGO_TARGET_DIR/windows-dist"
rm -rf "$dist"
mkdir -p "$dist/bin"
cp "$built/spreadout-app.exe" "$dist/Spreadout.exe"
cp "$built/spreadout.exe" "$dist/bin/spreadout.exe"
cp src-tauri/icons/icon.ico "$dist/Spreadout.ico"
# The release profile's `strip` leaves the GNU target's COFF symbol table (~70 MB) in place.
x86_64-w64-mingw32-strip "$dist/Spreadout.exe" "$dist/bin/spreadout.exe"
# The app's WebView2 loader: the GNU target links it as a DLL, which webview2-com-sys carries.
loader=$(ls -t "$built"/build/webview2-com-sys-*/out/x64/WebView2Loader.dll | head -1)
cp "$loader" "$dist/WebView2Loader.dll"

# Every DLL an .exe imports must be part of Windows (or shipped here): a MinGW runtime DLL
# (libstdc++-6, libwinpthread-1, libgcc_s_seh-1) would be missing on a person's machine.
system_dlls='^(kernel32|user32|gdi32|advapi32|shell32|ole32|oleaut32|comctl32|comdlg32|shlwapi|ws2_32|bcrypt|bcryptprimitives|crypt32|secur32|ncrypt|ntdll|userenv|dwmapi|uxtheme|version|winmm|imm32|iphlpapi|dbghelp|setupapi|powrprof|msvcrt|opengl32|d3d12|dxgi|d3dcompiler_47|dcomp|propsys|rpcrt4|winhttp|wininet|netapi32|psapi|cfgmgr32|hid|mswsock|uiautomationcore|combase|pdh|ktmw32|webview2loader|api-ms-win-[a-z0-9-]+)\.dll$'
for exe in "$dist/Spreadout.exe" "$dist/bin/spreadout.exe"; do
  foreign=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | tr '[:upper:]' '[:lower:]' | grep -Ev "$system_dlls" || true)
  if [ -n "$foreign" ]; then
    echo "$exe imports DLLs that Windows does not have: $foreign" >&2
    exit 1
  fi
done

version=$(node -p "require('./src-tauri/tauri.conf.json').version")
installer="$dist/Spreadout-$version-setup.exe"
makensis -V2 -DVERSION="$version" -DDIST="$dist" -DOUT="$installer" scripts/windows/installer.nsi

size() { du -h "$1" | cut -f1; }
echo "Windows build in $dist ($(( (SECONDS - started) / 60 )) min):"
echo "  Spreadout.exe (app)          $(size "$dist/Spreadout.exe")"
echo "  bin/spreadout.exe (CLI)      $(size "$dist/bin/spreadout.exe")"
echo "  $(basename "$installer")   $(size "$installer")"
