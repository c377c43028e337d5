#!/usr/bin/env bash
# Spreadout's training step side by side with PyTorch's (benchmarks/pytorch/step.py), interleaved
# A B A B in one invocation so both see the same machine state, then one table with each
# configuration's ratio Spreadout / PyTorch (median of the rounds).
#
#   benchmarks/vs-pytorch/run.sh                         # CPU, widths 16 and 64, 32 px, batch 128×2
#   benchmarks/vs-pytorch/run.sh --device gpu --precision f32,f16 --widths 64
#   benchmarks/vs-pytorch/run.sh --device gpu --image-size 224 --batch-size 64
#
# Options: --device auto|gpu|cpu|N (default cpu) --widths LIST --precision LIST --batch-size N
# --image-size N --steps N --warmup N --rounds N --out FILE (JSON lines of every measurement)
# --write-page (the tables also go into benchmarks/vs-pytorch/README.md's results section, with
# the command, machine, commit and date; benchmarks/common/page.sh).
# PyTorch: $SPREADOUT_PYTHON if set, else a python3 that already imports torch (a GPU machine's,
# or /usr/bin/python3 with Debian's python3-torch, which scripts/setup.sh installs for CI's smoke
# run), else a venv made in $SPREADOUT_VENV (default /var/cache/spreadout/bench-venv) with torch
# from the package registry. Spreadout: $SPREADOUT_BIN if set, else the checkout's build.
set -euo pipefail
# The page records the command as it was given, before the options are parsed away.
command="benchmarks/vs-pytorch/run.sh${*:+ $*}"
cd "$(dirname "$0")/../.."
device=cpu widths=16,64 precisions=f32 batch=128 size=32 steps=5 warmup=2 rounds=2 out="" write_page=""
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --widths) widths=$2; shift 2 ;;
    --precision) precisions=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --image-size) size=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --write-page) write_page=1; shift ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done

. benchmarks/common/tools.sh
bench_python torch torch numpy
spreadout_binary
# PyTorch runs on CUDA when Spreadout runs on a GPU, on the CPU otherwise.
torch_device=cpu
torch_modes=(fp32)
if [ "$device" != cpu ] && "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  torch_device=cuda
  torch_modes=(default fp32 bf16)
fi

results=${out:-$(mktemp)}
: > "$results"
for round in $(seq 1 "$rounds"); do
  for width in ${widths//,/ }; do
    for precision in ${precisions//,/ }; do
      echo "round $round: Spreadout w$width $precision on $device" >&2
      "$spreadout" bench --json --no-data --device "$device" --widths "$width" --precision "$precision" \
        --batch-size "$batch" --image-size "$size" --steps "$steps" --warmup "$warmup" >> "$results" || true
    done
    for mode in "${torch_modes[@]}"; do
      echo "round $round: PyTorch w$width $mode on $torch_device" >&2
      "$python" benchmarks/pytorch/step.py --device "$torch_device" --mode "$mode" --width "$width" \
        --batch "$batch" --image-size "$size" --steps "$steps" --warmup "$warmup" >> "$results"
    done
  done
done
table=$(mktemp)
trap 'rm -f "$table"' EXIT
"$python" - "$results" <<'PY' | tee "$table"
import json, statistics, sys
# Training rows only: a Spreadout asked for more rows (data, search) prints them with no width.
rows = [row for row in map(json.loads, filter(str.strip, open(sys.argv[1])))
        if row.get("backend") == "pytorch" or row.get("task") == "train"]
def key(row):
    return (row["width"], row["image_size"], row["batch"])
ours, theirs = {}, {}
for row in rows:
    if row["backend"] == "pytorch":
        theirs.setdefault(key(row) + (row["mode"],), []).append(row)
    else:
        ours.setdefault(key(row) + (row["precision"],), []).append(row)
median = lambda group: statistics.median(r["images_per_sec"] for r in group)
# PyTorch's default fp32 step is the anchor: TF32 convolutions on CUDA, plain fp32 on the CPU.
anchor_mode = "default" if any(k[3] == "default" for k in theirs) else "fp32"
print("| configuration | Spreadout device | compiler | Spreadout img/s | data wait | launches/step | blocking reads/step | host ms/step | upload KiB/step | PyTorch img/s (anchor) | ratio |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
def budget(group, field, scale=1.0, digits=1):
    """The median of a step-budget field over the rounds; blank where it is not measured."""
    values = [r[field] * scale for r in group if r.get(field) is not None]
    return f"{statistics.median(values):.{digits}f}" if values else ("native" if field == "launches_per_step" else "")
for k in sorted(ours):
    group = ours[k]
    anchor = theirs.get(k[:3] + (anchor_mode,))
    mine = median(group)
    wait = statistics.median(r["data_wait_fraction"] or 0 for r in group)
    ratio = mine / median(anchor) if anchor else float("nan")
    summary[(k[3], k[0], k[1])] = ratio
    costs = " | ".join([budget(group, "launches_per_step", digits=0), budget(group, "blocking_reads_per_step", digits=3),
                        budget(group, "host_ms_per_step"), budget(group, "upload_bytes_per_step", 1 / 1024)])
    print(f"| w{k[0]}, {k[1]} px, batch {k[2]}x2, {k[3]} | {group[0]['device']} | {group[0]['compiler']} | {mine:.1f} | {100 * wait:.1f} % | "
          f"{costs} | {median(anchor) if anchor else float('nan'):.1f} ({anchor_mode}) | {ratio:.2f} |")
print()
print("| PyTorch configuration | device | img/s |")
print("|---|---|---:|")
for k in sorted(theirs):
    group = theirs[k]
    print(f"| w{k[0]}, {k[1]} px, batch {k[2]}x2, {group[0]['precision']} | {group[0]['device']} | {median(group):.1f} |")
print()
for (precision, width, size), ratio in sorted(summary.items()):
    print(f"ratio {precision} w{width}" + ("" if size == 32 else f" {size}px") + f": {ratio:.2f}")
PY
if [ -n "$write_page" ]; then
  . benchmarks/common/page.sh
  write_page benchmarks/vs-pytorch/README.md "$table" "$command"
fi
