#!/usr/bin/env bash
# Builds Spreadout.app and its .dmg on a Mac (Apple silicon; Intel with the same steps), with
# HEIC/AVIF decoding linked in so the app runs on a Mac that has no Homebrew: libde265 and dav1d
# are built here as static libraries from the same sources (and security patches) as the Linux
# and Windows builds, Debian bookworm's, because Homebrew ships them as dylibs only and a .app
# that names /opt/homebrew would open only on the machine that built it.
#
# NOT RUN YET: this repository has no Mac. Every step is what the sources of Tauri's bundler,
# libheif-sys and system-deps say a Mac needs (docs/platforms.md#macos); the hosted workflow's
# macos job is where it will first run.
#
#   xcode-select --install
#   brew install cmake pkgconf meson ninja nasm node@22    # and Rust >= 1.95 from rustup.rs
#   bash scripts/macos/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = Darwin ] || { echo "scripts/macos/build.sh runs on macOS" >&2; exit 1; }
# Matches bundle.macOS.minimumSystemVersion, for the C libraries as for the app.
export MACOSX_DEPLOYMENT_TARGET=11.0
deps="${SPREADOUT_MAC_PREFIX:-$HOME/Library/Caches/Spreadout/build-deps}"
sources="$deps/sources"
mkdir -p "$sources"

fetch() { # FILE SHA256: from Debian's archive, checked
  local file=$1 sum=$2 pool
  case "$file" in libde265*) pool=libd/libde265 ;; dav1d*) pool=d/dav1d ;; esac
  [ -f "$sources/$file" ] || curl -fsSL -o "$sources/$file" "https://deb.debian.org/debian/pool/main/$pool/$file"
  echo "$sum  $sources/$file" | shasum -a 256 -c - >/dev/null
}
unpack() { # ORIG DEBIAN DIR: the upstream source with Debian's patches applied in order
  rm -rf "$sources/$3" && mkdir -p "$sources/$3"
  tar -xf "$sources/$1" -C "$sources/$3" --strip-components 1
  tar -xf "$sources/$2" -C "$sources/$3"
  while read -r patch; do
    [ -n "$patch" ] && patch -d "$sources/$3" -p1 -s <"$sources/$3/debian/patches/$patch"
  done <"$sources/$3/debian/patches/series"
}

if [ ! -f "$deps/lib/libde265.a" ] || [ ! -f "$deps/lib/libdav1d.a" ]; then
  fetch libde265_1.0.11.orig.tar.gz 2f8f12cabbdb15e53532b7c1eb964d4e15d444db1be802505e6ac97a25035bab
  fetch libde265_1.0.11-1+deb12u2.debian.tar.xz 81de2919da09690f2fb80383fcc68cda397bfed878a010061627f7794e278f4b
  fetch dav1d_1.0.0.orig.tar.xz 51737db7e4897e599684f873a4725176dd3c779e639411d7c4fce134bb5ebb82
  fetch dav1d_1.0.0-2+deb12u1.debian.tar.xz ae53e2bda2a18275cc66570194fced9b9681df2b3b8e041586a26a59d69a727e
  unpack libde265_1.0.11.orig.tar.gz libde265_1.0.11-1+deb12u2.debian.tar.xz libde265
  unpack dav1d_1.0.0.orig.tar.xz dav1d_1.0.0-2+deb12u1.debian.tar.xz dav1d
  cmake -S "$sources/libde265" -B "$sources/build-de265" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$deps" -DBUILD_SHARED_LIBS=OFF -DENABLE_SDL=OFF \
    -DENABLE_DECODER=OFF -DENABLE_ENCODER=OFF
  cmake --build "$sources/build-de265" && cmake --install "$sources/build-de265"
  rm -rf "$sources/build-dav1d"
  meson setup "$sources/build-dav1d" "$sources/dav1d" --prefix "$deps" --libdir lib \
    --buildtype release -Ddefault_library=static -Denable_tools=false -Denable_tests=false
  ninja -C "$sources/build-dav1d" install
fi
# libheif's CMake build and system-deps both find them here; system-deps links a library
# statically when its .a lies outside /Library and /System, as this prefix does.
export PKG_CONFIG_PATH="$deps/lib/pkgconfig"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

npm ci
# CI=true: the dmg is laid out without Finder's AppleScript, which needs a logged-in desktop.
CI=true npm run tauri build -- --bundles app,dmg

app="$CARGO_TARGET_DIR/release/bundle/macos/Spreadout.app"
# Self-contained: the binary may load only what every Mac has (/System, /usr/lib).
foreign=$(otool -L "$app/Contents/MacOS/"* | tail -n +2 | grep -v -e '^\s*/System/' -e '^\s*/usr/lib/' || true)
if [ -n "$foreign" ]; then
  echo "Spreadout.app loads libraries a Mac does not have:" >&2
  echo "$foreign" >&2
  exit 1
fi
codesign --verify --deep --strict "$app"
ls -lh "$CARGO_TARGET_DIR"/release/bundle/dmg/*.dmg
