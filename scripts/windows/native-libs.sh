#!/usr/bin/env bash
# Builds the C libraries that HEIC/AVIF decoding needs on Windows, for x86_64-w64-mingw32, as
# static libraries in one prefix that scripts/windows/build.sh hands to libheif's own build:
# libde265 (HEVC, HEIC's codec) and dav1d (AV1, AVIF's). On Linux they are the distribution's
# shared libraries; Windows has none to lean on (its own HEIF decoder needs the paid HEVC Video
# Extension from the Store), so the .exe carries them, linked in, and a person gets HEIC without
# installing anything. Sources are Debian bookworm's (the versions and security patches Linux
# builds link against), fetched with `apt-get source`; the result is kept between runs.
#
#   bash scripts/windows/native-libs.sh    # ~2 min on two cores the first time, then instant
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/windows/env.sh
prefix="${SPREADOUT_WIN_PREFIX:-/var/cache/spreadout/windows/prefix}"
sources=/var/cache/spreadout/windows/sources
mkdir -p "$sources" "$prefix/lib"
# libheif asks for the C++ runtime by `-lstdc++`, which MinGW's GCC resolves to the import library
# of libstdc++-6.dll (a DLL no Windows has) before the static archive. The static archives, copied
# into this prefix, come first on the link's search path (libheif-sys adds it), so the .exe
# carries the C++ runtime and its threads instead of needing them beside it.
runtime_dir=$("$CXX_x86_64_pc_windows_gnu" -print-file-name=libstdc++.a | xargs dirname)
cp "$runtime_dir/libstdc++.a" "$prefix/lib/"
for archive in libpthread.a libwinpthread.a; do
  cp "$("$CC_x86_64_pc_windows_gnu" -print-file-name="$archive")" "$prefix/lib/"
done
if [ -f "$prefix/lib/pkgconfig/libde265.pc" ] && [ -f "$prefix/lib/pkgconfig/dav1d.pc" ]; then
  echo "native libraries for Windows already in $prefix"
  exit 0
fi

# Debian's source packages: a deb-src entry for bookworm's main archive, added once.
if ! apt-get source --print-uris libde265 >/dev/null 2>&1; then
  cat > /etc/apt/sources.list.d/spreadout-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
fi
for tool in meson ninja nasm dpkg-source "$CC_x86_64_pc_windows_gnu" "$CXX_x86_64_pc_windows_gnu"; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install meson ninja-build nasm dpkg-dev gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64" >&2
    exit 1
  }
done
( cd "$sources" && apt-get source -qq libde265 dav1d >/dev/null 2>&1 ) || {
  echo "apt-get source libde265 dav1d failed (is deb.debian.org reachable?)" >&2
  exit 1
}
de265_src=$(ls -d "$sources"/libde265-*/ | head -1)
dav1d_src=$(ls -d "$sources"/dav1d-*/ | head -1)

# libde265 with CMake: the library only (no example decoder, no SDL), static.
cmake -S "$de265_src" -B "$sources/build-de265" -G Ninja \
  -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="$CC_x86_64_pc_windows_gnu" -DCMAKE_CXX_COMPILER="$CXX_x86_64_pc_windows_gnu" \
  -DCMAKE_RC_COMPILER=x86_64-w64-mingw32-windres -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DBUILD_SHARED_LIBS=OFF -DENABLE_SDL=OFF -DENABLE_DECODER=OFF -DENABLE_ENCODER=OFF
cmake --build "$sources/build-de265"
cmake --install "$sources/build-de265"

# dav1d with Meson, its assembly (nasm) included: AVIF decoding at its usual speed.
cat > "$sources/mingw.cross" <<CROSS
[binaries]
c = '$CC_x86_64_pc_windows_gnu'
cpp = '$CXX_x86_64_pc_windows_gnu'
ar = 'x86_64-w64-mingw32-gcc-ar-posix'
strip = 'x86_64-w64-mingw32-strip'
windres = 'x86_64-w64-mingw32-windres'

[host_machine]
system = 'windows'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
CROSS
rm -rf "$sources/build-dav1d"
meson setup "$sources/build-dav1d" "$dav1d_src" --cross-file "$sources/mingw.cross" \
  --prefix "$prefix" --libdir lib --buildtype release -Ddefault_library=static \
  -Denable_tools=false -Denable_tests=false
ninja -C "$sources/build-dav1d" install
echo "native libraries for Windows in $prefix"
ls "$prefix/lib"
