#!/usr/bin/env python3
"""The anchor for `spreadout bench`: the same training step in PyTorch.

ResNet-18 (CIFAR stem at <= 64 px, ImageNet stem above, as Spreadout chooses), 2 x m rows (two
views of m images), L2-normalised 128-d features, Eq. 7 of Ye et al. (CVPR 2019) with the
released code's stop-gradient, SGD (lr 0.03, momentum 0.9, weight decay 5e-4). Inputs are
random normalised tensors already on the device: this times the step, nothing else.

Prints one JSON object per configuration, with the keys of `spreadout bench --json`.

  python3 bench/pytorch_reference.py --device cpu --width 16 --batch 128 --image-size 32
  python3 bench/pytorch_reference.py --device cuda --mode default   # TF32 convolutions
  python3 bench/pytorch_reference.py --device cuda --mode fp32      # TF32 off
  python3 bench/pytorch_reference.py --device cuda --mode bf16      # autocast bf16, channels_last
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class EmbeddingNet(nn.Module):
    """The network of README's "Using a trained model in PyTorch" section."""

    def __init__(self, width, dim, cifar_stem):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False) if cifar_stem else nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.pool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(w)
        stage = lambda cin, cout, s: nn.Sequential(BasicBlock(cin, cout, s), BasicBlock(cout, cout, 1))
        self.layer1, self.layer2 = stage(w, w, 1), stage(w, 2 * w, 2)
        self.layer3, self.layer4 = stage(2 * w, 4 * w, 2), stage(4 * w, 8 * w, 2)
        self.linear = nn.Linear(8 * w, dim)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.normalize(self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1)), dim=1)


def spread_out_loss(features, tau):
    """Eq. 7: rows 0..m are first views, m..2m second views; the right factor is detached."""
    features = features.float()  # the loss in f32 whatever the convolutions ran in
    n = features.shape[0]
    rows = torch.arange(n, device=features.device)
    positive = (rows + n // 2) % n
    similarity = features @ features.detach().t() / tau
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
    log_denominator = torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1)
    log_p_positive = similarity[rows, positive] - log_denominator
    p = torch.exp(similarity - log_denominator[:, None])
    negatives = ~self_mask
    negatives[rows, positive] = False
    log_not_negative = torch.log1p(-p.clamp(max=1 - 1e-7)) * negatives
    return -(log_p_positive + log_not_negative.sum(dim=1)).mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    optimizer = torch.optim.SGD(net.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
    inputs = torch.randn(2 * args.batch, 3, args.image_size, args.image_size, device=device)
    inputs = inputs.contiguous(memory_format=memory_format)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            features = net(inputs)
        loss = spread_out_loss(features, 0.1)
        loss.backward()
        optimizer.step()
        return loss

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
