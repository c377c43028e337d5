#!/usr/bin/env bash
# One prepared GPU check, in two halves.
#
# On the build machine (this checkout, Rust installed, package registries reachable):
#   scripts/gpu-check.sh --pack [--debug]
#     builds the CLI with Burn's SPIR-V compiler (`--features spirv`; release, or with --debug the
#     dev profile the tests use), downloads Debian's Vulkan loader (apt-get download libvulkan1) and writes
#     spreadout-gpu-check.tar.gz: the binary, the loader, and, laid out as in the repository,
#     this script, the parity benchmark (benchmarks/gpu-parity/run.sh with
#     benchmarks/pytorch/parity_data.py and compare_weights.py), the side-by-side benchmark
#     (benchmarks/vs-pytorch/run.sh) with the PyTorch transcription it times
#     (benchmarks/pytorch/reference.py and step.py), and the page writer both can use.
#
# On an NVIDIA Linux machine with the driver and PyTorch but no Rust and no network:
#   tar xzf spreadout-gpu-check.tar.gz && spreadout-gpu-check/scripts/gpu-check.sh [--parity-only] [--fidelity CIFAR_TARBALL]
#     unpacks the loader, points it at NVIDIA's Vulkan driver, prints `spreadout devices`, then
#     checks correctness before speed: benchmarks/gpu-parity/run.sh trains every method and loss variant
#     (and f16) for two tiny steps on the GPU and on the CPU with the same seed and prints a parity
#     table of the largest difference between the two models (a failed case does not stop the
#     check, but is repeated at the end and makes the exit status 1). Then, unless --parity-only,
#     it runs the side-by-side benchmark (f32 and f16; widths 16 and 64, batch 128×2 at 32 px; width 64 with
#     the ImageNet stem at 224 px, batch 64×2) and ends with one table and the lines
#     `ratio f32 w64: X` and `ratio f16 w64: Y` (Spreadout over PyTorch's default fp32 step),
#     then the GPU step's kernel launches by kernel (`--launches`), the CPU step by phase
#     (`--phases`) and the CPU side by side with PyTorch on the machine's own cores.
#     --fidelity also trains the paper's setting on CIFAR-10 (50 000 images, width 64, batch 128,
#     2 epochs, --fidelity-precision f32|f16, default f32) and prints kNN on the 10 000 test
#     images and the wall time (the paper reports 60 % after 2 epochs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = --pack ]; then
  cd "$here/.."
  . scripts/env.sh
  profile=release
  [ "${2:-}" = --debug ] && profile=debug
  if [ "$profile" = release ]; then
    cargo build --release --bin spreadout -p spreadout --features spirv >&2
  else
    cargo build --bin spreadout --workspace --features spreadout-app/custom-protocol,spirv >&2
  fi
  stage=$(mktemp -d)/spreadout-gpu-check
  cp "$CARGO_TARGET_DIR/$profile/spreadout" "$stage/"
  strip "$stage/spreadout" 2>/dev/null || true
  # Laid out as in the repository, so that each script finds the others by the same paths.
  for file in scripts/gpu-check.sh benchmarks/gpu-parity/run.sh benchmarks/vs-pytorch/run.sh \
    benchmarks/pytorch/reference.py benchmarks/pytorch/step.py benchmarks/pytorch/parity_data.py \
    benchmarks/pytorch/compare_weights.py benchmarks/common/page.sh; do
    mkdir -p "$stage/$(dirname "$file")"
    cp "$file" "$stage/$file"
  done
  (cd "$stage" && apt-get download libvulkan1 >&2)
  tar czf spreadout-gpu-check.tar.gz -C "$(dirname "$stage")" spreadout-gpu-check
  rm -rf "$(dirname "$stage")"
  ls -l spreadout-gpu-check.tar.gz
  exit 0
fi

fidelity="" fidelity_precision=f32 parity_only=""
while (($#)); do
  case "$1" in
    --fidelity) fidelity=$(realpath "$2"); shift 2 ;;
    --fidelity-precision) fidelity_precision=$2; shift 2 ;;
    --parity-only) parity_only=1; shift ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
root=$(cd "$here/.." && pwd)
cd "$root"
start=$(date +%s)
# The Vulkan loader, unpacked beside the binary (the machine has the driver, not the loader).
if ! ls vulkan/usr/lib/*/libvulkan.so.1 >/dev/null 2>&1; then
  dpkg -x libvulkan1_*.deb vulkan
fi
export LD_LIBRARY_PATH="$(dirname "$(ls vulkan/usr/lib/*/libvulkan.so.1 | head -1)")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$nvidia_icd" ] && export VK_DRIVER_FILES=$nvidia_icd
export SPREADOUT_BIN=$root/spreadout SPREADOUT_PYTHON=${SPREADOUT_PYTHON:-python3}
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$root/cache}

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
echo "== spreadout devices"
./spreadout devices | tee "$root/devices.txt"
if grep -q '^auto → CPU' "$root/devices.txt"; then
  echo "no GPU adapter reached through Vulkan: check the driver's ICD file ($nvidia_icd) and libvulkan" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

# Correctness before speed: a fast GPU step that trains a different model is no result. A failed
# case is reported and remembered, not fatal, so that one broken method still leaves the rest of
# the check's numbers.
echo "== parity: training on the GPU against the CPU (flex), same seed, 2 steps of 4 images"
parity_start=$(date +%s)
parity_failed=""
benchmarks/gpu-parity/run.sh | tee "$root/parity.md" || parity_failed=1
echo "== parity wall time: $(( $(date +%s) - parity_start )) s"

if [ -z "$parity_only" ]; then
  bench_start=$(date +%s)
  results=$root/results.jsonl
  : > "$results"
  echo "== side by side with PyTorch, 32 px (CIFAR stem), batch 128×2"
  benchmarks/vs-pytorch/run.sh --device gpu --precision f32,f16 --widths 16,64 --batch-size 128 --image-size 32 \
    --steps 20 --warmup 5 --rounds 2 --out "$root/results-32.jsonl" | tee "$root/table-32.md"
  echo "== side by side with PyTorch, 224 px (ImageNet stem), batch 64×2"
  benchmarks/vs-pytorch/run.sh --device gpu --precision f32,f16 --widths 64 --batch-size 64 --image-size 224 \
    --steps 10 --warmup 3 --rounds 1 --out "$root/results-224.jsonl" | tee "$root/table-224.md"
  cat "$root"/results-*.jsonl > "$results"
  echo "== kernel launches per step on the GPU, by kernel (ResNet-18 w16, 32 px, batch 128×2)"
  ./spreadout bench --device gpu --widths 16 --steps 5 --warmup 2 --no-data --launches | tee "$root/launches.md"
  echo "== the CPU step by phase, and side by side with PyTorch on the CPU (this machine's cores)"
  ./spreadout bench --device cpu --widths 16,64 --steps 2 --warmup 1 --no-data --phases | tee "$root/phases.md"
  benchmarks/vs-pytorch/run.sh --device cpu --widths 16,64 --steps 3 --warmup 1 --rounds 1 \
    --out "$root/results-cpu.jsonl" | tee "$root/table-cpu.md"
  echo "== benchmark wall time: $(( $(date +%s) - bench_start )) s"
fi

if [ -n "$fidelity" ]; then
  echo "== fidelity: CIFAR-10, width 64, batch 128, 2 epochs, $fidelity_precision"
  data=$(mktemp -d)
  tar xzf "$fidelity" -C "$data"
  cifar=$(dirname "$(find "$data" -maxdepth 3 -type d -name train | head -1)")
  fidelity_start=$(date +%s)
  ./spreadout train "$cifar/train" --eval-test "$cifar/test" --out "$data/run" --epochs 2 --width 64 \
    --batch-size 128 --precision "$fidelity_precision" --device gpu
  echo "fidelity wall time: $(( $(date +%s) - fidelity_start )) s"
  python3 -c 'import json,sys; m=[json.loads(l) for l in open(sys.argv[1])]; [print(f"epoch {x[\"epoch\"]}: kNN {x[\"knn_accuracy\"]:.2f} %, {x[\"images_per_sec\"]:.0f} images/s, data wait {100*x.get(\"data_wait_fraction\",0):.1f} %") for x in m]' "$data/run/metrics.jsonl"
fi
if [ -z "$parity_only" ]; then
  echo "== ratios (Spreadout / PyTorch default fp32)"
  grep -h '^ratio ' "$root/table-32.md" "$root/table-224.md"
fi
echo "== gpu check wall time: $(( $(date +%s) - start )) s"
# The parity verdict last, where it cannot scroll away behind the benchmark's tables.
if [ -n "$parity_failed" ]; then
  echo "== parity FAILED: the GPU trained a different model from the CPU's in these cases ($root/parity.md):"
  grep -F '| FAIL' "$root/parity.md" || echo "(no table: benchmarks/gpu-parity/run.sh stopped before printing it)"
  exit 1
fi
echo "== parity: every case within its tolerance"
