#!/usr/bin/env python3
"""PyTorch's training step beside `spreadout bench`'s, timed (benchmarks/vs-pytorch/run.sh).

The step of reference.py (ResNet-18, 2 x m rows, Eq. 7, SGD) on random normalised inputs already
on the device: this times the step, nothing else. Prints one JSON object per configuration, with
the keys of `spreadout bench --json`.

  python3 benchmarks/pytorch/step.py --device cpu --width 16 --batch 128 --image-size 32
  python3 benchmarks/pytorch/step.py --device cuda --mode default   # TF32 convolutions
  python3 benchmarks/pytorch/step.py --device cuda --mode fp32      # TF32 off
  python3 benchmarks/pytorch/step.py --device cuda --mode bf16      # autocast bf16, channels_last
"""

import argparse
import json
import time

import torch

from reference import EmbeddingNet, sgd, training_step


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--mode", default="default", choices=["default", "fp32", "bf16"],
                        help="CUDA only: default = PyTorch's defaults (TF32 convolutions), fp32 = TF32 off, bf16 = autocast + channels_last")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128, help="images per batch; each gives two views")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    mode = args.mode if cuda else "fp32"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = mode != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default for matmuls
    torch.manual_seed(0)
    net = EmbeddingNet(args.width, 128, args.image_size <= 64).to(device)
    memory_format = torch.channels_last if mode == "bf16" else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = sgd(net)
    inputs = torch.randn(2 * args.batch, 3, args.image_size, args.image_size, device=device)
    inputs = inputs.contiguous(memory_format=memory_format)

    autocast_dtype = torch.bfloat16 if mode == "bf16" else None

    def step():
        return training_step(net, optimizer, inputs, autocast_dtype)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    if not torch.isfinite(loss):
        raise SystemExit(f"the reference loss became {loss.item()}")
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    precision = {"default": "tf32 (PyTorch default)", "fp32": "fp32 (TF32 off)", "bf16": "bf16 autocast, channels_last"}[mode]
    if not cuda:
        precision = "fp32"
    print(json.dumps({
        "task": "train",
        "detail": f"PyTorch {torch.__version__} ResNet-18 w{args.width}, {args.image_size} px, batch {args.batch}x2, {precision}",
        "device": name,
        "backend": "pytorch",
        "compiler": "cuda" if cuda else "native",
        "precision": precision,
        "mode": mode,
        "width": args.width,
        "batch": args.batch,
        "image_size": args.image_size,
        "images_per_sec": 2 * args.batch / seconds,
        "seconds": seconds,
        "data_wait_fraction": None,
    }), flush=True)


if __name__ == "__main__":
    main()
