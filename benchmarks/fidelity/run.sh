#!/usr/bin/env bash
# Fidelity against an independent implementation: Spreadout's training and the PyTorch
# transcription of the paper's (benchmarks/pytorch/train.py) on the same folders with the
# same protocol (ResNet-18 of the given width, 32 px, batch 128×2, Eq. 7 with τ 0.1, SGD lr 0.03
# with the step schedule scaled to the run), one run per seed each, then one table of kNN top-1
# after every epoch (k 200, σ 0.1): Spreadout per seed and mean ± std | PyTorch per seed and
# mean ± std. Not part of CI: on 2 CPU cores the default (10 epochs × 3 seeds × 2) takes hours.
#
#   benchmarks/fidelity/run.sh                  # data/cifar10-subset, 10 epochs, width 16, seeds 0,1,2
#   benchmarks/fidelity/run.sh --train DIR --test DIR --epochs 2 --width 4 --batch-size 16 --seeds 0
#
# Options: --train DIR --test DIR (default: benchmarks/cifar10-subset/run.sh's data/cifar10-subset/{train,test},
# made from $CIFAR_ARCHIVE as that script does when missing) --epochs N (10) --width N (16)
# --seeds LIST (0,1,2) --batch-size N (128) --device cpu|gpu|auto|N (Spreadout's; PyTorch then uses
# CUDA where it has it; default cpu) --threads N (PyTorch's CPU threads; default all cores)
# --out DIR (default runs/fidelity-vs-pytorch: spreadout-seed-S/ run folders, pytorch-seed-S.txt,
# fidelity.md with the table; those of the seeds run are replaced on every invocation)
# --write-page (the table also goes into benchmarks/fidelity/README.md's results section, with the
# command, machine, commit and date; benchmarks/common/page.sh).
# PyTorch: $SPREADOUT_PYTHON if set, else a python3 that already imports torch, numpy and PIL,
# else a venv made in $SPREADOUT_VENV (default /var/cache/spreadout/bench-venv) with them from the
# package registry. Spreadout: $SPREADOUT_BIN if set, else the checkout's build.
set -euo pipefail
# The page records the command as it was given, before the options are parsed away.
command="benchmarks/fidelity/run.sh${*:+ $*}"
cd "$(dirname "$0")/../.."
train="" test="" epochs=10 width=16 seeds=0,1,2 batch=128 device=cpu threads="" out=runs/fidelity-vs-pytorch
write_page=""
while (($#)); do
  case "$1" in
    --train) train=$2; shift 2 ;;
    --test) test=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --width) width=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --write-page) write_page=1; shift ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
threads=${threads:-$(nproc)}

# The default folders: the CIFAR-10 subset of benchmarks/cifar10-subset/run.sh (500 training and
# 100 test images per class), cut from the archive by the same function when it is not there yet.
if [ -z "$train" ] && [ -z "$test" ]; then
  work="${CIFAR_WORK:-data/cifar10-subset}"      # git-ignored
  train=$work/train test=$work/test
  if [ ! -d "$work/train" ]; then
    . benchmarks/common/cifar-sample.sh
    cifar_sample "$work" train:500 test:100
  fi
fi
for folder in "$train" "$test"; do
  [ -d "$folder" ] || { echo "$folder is not a folder (give both --train and --test)" >&2; exit 2; }
done

. benchmarks/common/tools.sh
bench_python "torch, numpy, PIL" torch numpy pillow
spreadout_binary
# PyTorch runs on CUDA when Spreadout runs on a GPU, on the CPU otherwise.
torch_device=cpu
if [ "$device" != cpu ] && "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  torch_device=cuda
fi

mkdir -p "$out"
for seed in ${seeds//,/ }; do
  rm -rf "$out/spreadout-seed-$seed"
  echo "seed $seed: Spreadout on $device" >&2
  "$spreadout" train "$train" --eval-test "$test" --out "$out/spreadout-seed-$seed" \
    --epochs "$epochs" --width "$width" --image-size 32 --batch-size "$batch" --seed "$seed" \
    --device "$device" >&2
  echo "seed $seed: PyTorch on $torch_device" >&2
  "$python" benchmarks/pytorch/train.py --train "$train" --test "$test" --epochs "$epochs" \
    --width "$width" --image-size 32 --batch "$batch" --seeds "$seed" --threads "$threads" \
    --device "$torch_device" | tee "$out/pytorch-seed-$seed.txt" >&2
done

"$python" - "$out" "$seeds" "$epochs" "$width" "$batch" <<'PY' | tee "$out/fidelity.md"
import json, statistics, sys
out, seeds, epochs, width, batch = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def curve(lines, key):
    by_epoch = {}
    for line in lines:
        if line.startswith("{"):
            row = json.loads(line)
            by_epoch[row["epoch"]] = row.get(key)
    return [by_epoch.get(epoch) for epoch in range(1, epochs + 1)]

spreadout = [curve(open(f"{out}/spreadout-seed-{s}/metrics.jsonl"), "knn_accuracy") for s in seeds]
pytorch = [curve(open(f"{out}/pytorch-seed-{s}.txt"), "knn") for s in seeds]
fmt = lambda value: "–" if value is None else f"{value:.2f}"

def summary(values):
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    text = f"{statistics.fmean(known):.2f}"
    return text + (f" ± {statistics.stdev(known):.2f}" if len(known) > 1 else "")

print(f"kNN top-1 (%) after each epoch, ResNet-18 w{width}, 32 px, batch {batch}x2, seeds {','.join(seeds)} "
      "(mean ± sample std over seeds)")
print()
header = ["epoch"] + [f"Spreadout s{s}" for s in seeds] + ["Spreadout mean"] + [f"PyTorch s{s}" for s in seeds] + ["PyTorch mean"]
print("| " + " | ".join(header) + " |")
print("|" + "---:|" * len(header))
for epoch in range(epochs):
    ours = [c[epoch] for c in spreadout]
    theirs = [c[epoch] for c in pytorch]
    cells = [str(epoch + 1)] + [fmt(v) for v in ours] + [summary(ours)] + [fmt(v) for v in theirs] + [summary(theirs)]
    print("| " + " | ".join(cells) + " |")
last_ours = [c[-1] for c in spreadout if c[-1] is not None]
last_theirs = [c[-1] for c in pytorch if c[-1] is not None]
if last_ours and last_theirs:
    print()
    print(f"last epoch: Spreadout − PyTorch = {statistics.fmean(last_ours) - statistics.fmean(last_theirs):+.2f} points")
PY
if [ -n "$write_page" ]; then
  . benchmarks/common/page.sh
  write_page benchmarks/fidelity/README.md "$out/fidelity.md" "$command"
fi
