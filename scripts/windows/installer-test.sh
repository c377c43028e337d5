#!/usr/bin/env bash
# Installs, runs and uninstalls the Windows installer under Wine, silently (/S), as a person's
# second visit would: files, Start-menu shortcuts and the Apps & features entry are where they
# belong, the installed spreadout.exe runs, a file of the person's own beside them survives the
# uninstall, and the uninstall removes everything the installer wrote. WebView2 cannot run under
# Wine, so the prefix is marked as having it (the registry value Edge's updater writes) and the
# installer's download of it is not exercised here. Called by scripts/windows/test.sh; prints
# one line, `installer: ...`, and exits non-zero on the first check that fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
. scripts/windows/env.sh
dist="$CARGO_TARGET_DIR/windows-dist"
installer=$(ls "$dist"/Spreadout-*-setup.exe)
local_app_data=$(wine cmd /c echo %LOCALAPPDATA% 2>/dev/null | tr -d '\r')
programs=$(winepath -u "$local_app_data\\Programs\\Spreadout" 2>/dev/null)
start_menu=$(winepath -u "$(wine cmd /c echo %APPDATA% 2>/dev/null | tr -d '\r')\\Microsoft\\Windows\\Start Menu\\Programs\\Spreadout" 2>/dev/null)
key='HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\Spreadout'
fail() { echo "installer: $*" >&2; exit 1; }

wine reg add 'HKCU\Software\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}' \
  /v pv /t REG_SZ /d 120.0.0.0 /f >/dev/null 2>&1
rm -rf "$programs"
wine "$installer" /S || fail "the silent install failed"
for file in Spreadout.exe WebView2Loader.dll Spreadout.ico bin/spreadout.exe uninstall.exe; do
  [ -f "$programs/$file" ] || fail "$file was not installed in $programs"
done
for link in "Spreadout.lnk" "Spreadout command prompt.lnk"; do
  [ -f "$start_menu/$link" ] || fail "no Start-menu shortcut $link"
done
wine reg query "$key" /v DisplayVersion 2>/dev/null | grep -q "$(node -p "require('./src-tauri/tauri.conf.json').version")" ||
  fail "no Apps & features entry with the version"
version=$(wine "$programs/bin/spreadout.exe" --version 2>/dev/null | tr -d '\r')
[ "${version#spreadout }" != "$version" ] || fail "the installed spreadout.exe does not run: $version"

# A second install over the first (an upgrade) keeps working, then the uninstall.
echo "notes of my own" >"$programs/mine.txt"
wine "$installer" /S || fail "installing over an installed copy failed"
# The uninstaller copies itself to the temporary folder and returns at once; wait for it.
wine "$programs/uninstall.exe" /S || fail "the silent uninstall failed"
wineserver -w
for file in Spreadout.exe WebView2Loader.dll bin/spreadout.exe uninstall.exe; do
  [ ! -e "$programs/$file" ] || fail "$file is left after the uninstall"
done
[ -f "$programs/mine.txt" ] || fail "the uninstall deleted a file it did not write"
[ ! -e "$start_menu" ] || fail "the Start-menu folder is left after the uninstall"
if wine reg query "$key" >/dev/null 2>&1; then fail "the Apps & features entry is left"; fi
rm -rf "$programs"
echo "installer: installed, ran $version, installed over itself, uninstalled; a person's own file kept"
