#!/usr/bin/env bash
# Tests the Windows build under Wine on this Linux machine, on the CPU backend, after building
# every target of the workspace for Windows (tests and benchmarks too, linted):
#   1. the engine's and the app's unit tests (`--lib`), each test binary run by wine;
#   2. the CLI's integration tests (tests/it, module cli), the real spreadout.exe under wine;
#   3. one epoch of training on CIFAR-10 photographs, the same command and seed as spreadout.exe
#      under Wine and as the Linux build, their epoch-1 kNN, loss and exported model compared;
#   4. the installer: installed, run, installed over itself and uninstalled (installer-test.sh).
# Ends with a table and `total: N passed, M failed`; non-zero on any failure.
#
#   bash scripts/windows/test.sh [--skip-train]
#
# Needs what scripts/windows/build.sh needs and its output, Wine (Debian's 8.0: wine64, and
# wine32:i386 for the installer, which NSIS makes a 32-bit program), and the Linux build
# (scripts/build.sh) for the comparison. Wine 8.0 lacks bcryptprimitives.dll, which Rust's
# standard library imports on Windows; a stand-in (scripts/windows/wine/) is built into the test
# prefix only. Takes ~25 min after build.sh (the test binaries' build, then the runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
. scripts/windows/env.sh
target=x86_64-pc-windows-gnu
features=(--workspace --features spreadout-app/custom-protocol)
logs="$CARGO_TARGET_DIR/windows-test"
rm -rf "$logs"
mkdir -p "$logs"
started=$SECONDS

# One Wine prefix, made once, reporting Windows 10 (what Rust's standard library targets).
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wineboot -i >/dev/null 2>&1
fi
wine reg add 'HKCU\Software\Wine' /v Version /t REG_SZ /d win10 /f >/dev/null 2>&1
shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$shim" ]; then
  "$CC_x86_64_pc_windows_gnu" -O2 -shared -o "$shim" scripts/windows/wine/bcryptprimitives.c \
    scripts/windows/wine/bcryptprimitives.def -ladvapi32
fi
# The app's test binary loads WebView2Loader.dll (the GNU target links it as a DLL).
built="$CARGO_TARGET_DIR/$target/release"
loader_dir=$(dirname "$(ls -t "$built"/build/webview2-com-sys-*/out/x64/WebView2Loader.dll | head -1)")
export WINEPATH="$(winepath -w "$loader_dir" 2>/dev/null)"

# Tests that return early for want of something record it here (tests/common/skip.rs); Wine
# opens the Unix path on its Z: drive.
export SPREADOUT_SKIPS="$logs/skips.txt"
: >"$SPREADOUT_SKIPS"

# `cargo test` prints one `test result:` line per binary; the sums are the totals.
count() { # LOG WORD -> the sum of "N WORD" over the log's result lines
  grep -E '^test result:' "$1" | grep -oE "[0-9]+ $2" | awk '{ s += $1 } END { print s + 0 }'
}
status=0
run_suite() { # NAME LOG CARGO-ARGS...
  local name=$1 log=$2
  shift 2
  echo "== $name" >&2
  cargo test --release --target "$target" "${features[@]}" --no-fail-fast "$@" >"$log" 2>&1 || status=1
  grep -E '^test .* FAILED$|^test result:' "$log" >&2 || true
}
# Every target compiles and lints for Windows, the test suites not run here (serving, layout) too.
echo "== every target built for Windows" >&2
cargo test --release --target "$target" "${features[@]}" --all-targets --no-run >"$logs/build.txt" 2>&1 || {
  status=1
  grep -E '^(error|warning)' "$logs/build.txt" >&2 || true
}
run_suite "unit tests under Wine" "$logs/unit.txt" --lib
run_suite "CLI integration tests under Wine" "$logs/cli.txt" --test it -- cli::

train_row=""
if [ "${1:-}" != "--skip-train" ]; then
  echo "== one epoch of training, Linux and Wine, same seed" >&2
  linux_bin="$CARGO_TARGET_DIR/debug/spreadout"
  [ -x "$linux_bin" ] || { echo "build the Linux CLI first: scripts/build.sh" >&2; exit 1; }
  . benchmarks/common/cifar-sample.sh
  work="$logs/train"
  cifar_sample "$work/data" train:300 test:100
  args=(--epochs 1 --width 16 --batch-size 128 --seed 7 --device cpu --knn-k 200)
  "$linux_bin" train "$work/data/train" --eval-test "$work/data/test" --out "$work/linux" \
    --cache-dir "$work/cache-linux" "${args[@]}" >"$logs/train-linux.txt" 2>&1 || status=1
  win() { winepath -w "$1" 2>/dev/null; }
  wine "$built/spreadout.exe" train "$(win "$work/data/train")" --eval-test "$(win "$work/data/test")" \
    --out "$(win "$work/windows")" --cache-dir "$(win "$work/cache-windows")" "${args[@]}" \
    >"$logs/train-windows.txt" 2>&1 || status=1
  train_row=$(python3 - "$work" <<'PY'
import hashlib, json, pathlib, struct, sys
work = pathlib.Path(sys.argv[1])
def weights(model):
    # The tensors' bytes in name order: the header's metadata keys come in a hash map's order,
    # so two files of the same weights may differ there.
    if not model.exists():
        return "none"
    raw = model.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    digest = hashlib.sha256()
    for name in sorted(key for key in header if key != "__metadata__"):
        start, end = header[name]["data_offsets"]
        digest.update(name.encode() + raw[8 + size + start:8 + size + end])
    return digest.hexdigest()[:12]
def run(name):
    line = json.loads((work / name / "metrics.jsonl").read_text().splitlines()[0])
    return line.get("knn_accuracy"), line.get("loss"), weights(work / name / "model.safetensors")
linux, windows = run("linux"), run("windows")
same = "identical" if linux == windows else "DIFFERENT"
print(f"epoch-1 kNN {linux[0]} / {windows[0]} %, loss {linux[1]} / {windows[1]}, weights {linux[2]} / {windows[2]} (Linux / Wine): {same}")
if linux != windows:
    sys.exit(1)
PY
) || status=1
fi

installer_row=$(bash scripts/windows/installer-test.sh 2>&1 | tail -1)
case "$installer_row" in "installer: installed"*) ;; *) status=1 ;; esac

skipped=$(wc -l <"$SPREADOUT_SKIPS")
passed=$(( $(count "$logs/unit.txt" passed) + $(count "$logs/cli.txt" passed) - skipped ))
failed=$(( $(count "$logs/unit.txt" failed) + $(count "$logs/cli.txt" failed) ))
skipped=$(( skipped + $(count "$logs/unit.txt" ignored) + $(count "$logs/cli.txt" ignored) ))
echo
echo "Windows build under Wine ($(wine --version), $(( (SECONDS - started) / 60 )) min; logs in $logs):"
printf '  %-34s %s passed, %s failed, %s ignored\n' "unit tests (--lib)" \
  "$(count "$logs/unit.txt" passed)" "$(count "$logs/unit.txt" failed)" "$(count "$logs/unit.txt" ignored)"
printf '  %-34s %s passed, %s failed, %s ignored\n' "CLI integration tests (it cli::)" \
  "$(count "$logs/cli.txt" passed)" "$(count "$logs/cli.txt" failed)" "$(count "$logs/cli.txt" ignored)"
[ -n "$train_row" ] && printf '  %-34s %s\n' "training, 3000 photos, 1 epoch" "$train_row"
printf '  %s\n' "$installer_row"
[ -s "$SPREADOUT_SKIPS" ] && sed 's/^/  skipped: /' "$SPREADOUT_SKIPS"
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $status
