#!/usr/bin/env python3
"""The paper's training (§3.3, §4.1) in PyTorch, as `spreadout train` runs it, for comparing per-epoch
kNN accuracy with an independent implementation (benchmarks/fidelity/run.sh). The model, Eq. 7
and the SGD step are reference.py's, the ones benchmarks/vs-pytorch/run.sh times.

Every image under --train (recursively, sorted by path; the first-level folder is the label, used
only for evaluation), per-channel mean/std of the training pixels; per view RandomResizedCrop(32,
scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.4), RandomGrayscale(0.2), RandomHorizontalFlip,
ToTensor, Normalize, in the order of the paper's released code (demo_seen.py), on PIL images as
torchvision does (transcribed below, torchvision is not needed); m shuffled images per step
(drop_last), two views each, rows 0..m first views, m..2m second views, one forward pass; Eq. 7,
tau 0.1; SGD lr 0.03, momentum 0.9, weight decay 5e-4, x0.1 from 60 % and x0.01 from 80 % of the
epochs. After every epoch: centre views (Resize + CenterCrop) of the --train folder (the kNN
memory) and the --test folder in eval mode, weighted kNN (k 200, sigma 0.1; Wu et al. 2018).
Prints one JSON line per seed and epoch, then a Markdown table of kNN per epoch and seed.

  python3 benchmarks/pytorch/train.py --train data/cifar10-subset/train \\
      --test data/cifar10-subset/test --epochs 10 --width 16 --batch 128 --seeds 0,1,2 --threads 2
"""

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from reference import LR, EmbeddingNet, sgd, training_step

try:  # a clear message below rather than an ImportError
    import numpy as np
    from PIL import Image, ImageEnhance
except ImportError:
    np = Image = ImageEnhance = None

# Spreadout's image extensions (src/data/scan.rs), compared in lower case.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = 0.4
GRAYSCALE_P = 0.2
FLIP_P = 0.5
KNN_K, KNN_SIGMA = 200, 0.1
MIN_STD = 1e-3  # Spreadout clamps a (near-)constant channel's std to this


def scan_folder(root):
    """Every image file under `root`, recursively, sorted by path (component by component, as
    Rust's PathBuf orders them), skipping hidden files and folders; with the first-level folder
    name of each (None for files directly in `root`)."""
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"{root} is not a folder")
    found = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(parts)
    found.sort()
    if not found:
        raise SystemExit(f"no images under {root}")
    return [(root.joinpath(*parts), parts[0] if len(parts) > 1 else None) for parts in found]


def load_rgb(path):
    """The file as 8-bit RGB; transparency is flattened over white, as Spreadout does."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")


def channel_stats(images):
    """Per-channel mean and population std of all pixels of all images, in [0, 1] units (each image
    weighted by its pixel count); exact integer sums, as Spreadout's."""
    total = np.zeros(3, dtype=np.int64)
    squares = np.zeros(3, dtype=np.int64)
    pixels = 0
    for image in images:
        values = np.asarray(image, dtype=np.int64).reshape(-1, 3)
        total += values.sum(axis=0)
        squares += (values * values).sum(axis=0)
        pixels += values.shape[0]
    mean = total / pixels
    variance = np.maximum(squares / pixels - mean * mean, 0.0)
    return [float(m / 255.0) for m in mean], [max(float(math.sqrt(v) / 255.0), MIN_STD) for v in variance]


# torchvision's transforms on PIL images (transforms.py and _functional_pil.py), transcribed so
# that no torchvision build has to match the installed torch. Random draws come from torch's
# global generator in torchvision's order.

def random_resized_crop(image, size, scale=CROP_SCALE, ratio=CROP_RATIO):
    """RandomResizedCrop(size, scale, ratio): get_params, then crop and PIL bilinear resize."""
    width, height = image.size
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,)).item()
            left = torch.randint(0, width - w + 1, size=(1,)).item()
            break
    else:  # centre crop fallback
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    crop = image.crop((left, top, left + w, top + h))
    return crop if crop.size == (size, size) else crop.resize((size, size), Image.BILINEAR)


def adjust_hue(image, hue_factor):
    """torchvision's PIL adjust_hue: H of HSV shifted by uint8(hue_factor * 255), wrapping (the
    float-to-uint8 cast truncates towards zero, then wraps modulo 256)."""
    h, s, v = image.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int64) + int(hue_factor * 255)) % 256
    h = Image.fromarray(shifted.astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(image, strength=JITTER):
    """ColorJitter(strength, strength, strength, strength): a random order of the four
    adjustments (torch.randperm(4)), then the four factors drawn in order b, c, s, h."""
    order = torch.randperm(4).tolist()
    brightness = float(torch.empty(1).uniform_(max(0.0, 1 - strength), 1 + strength))
    contrast = float(torch.empty(1).uniform_(max(0.0, 1 - strength), 1 + strength))
    saturation = float(torch.empty(1).uniform_(max(0.0, 1 - strength), 1 + strength))
    hue = float(torch.empty(1).uniform_(-strength, strength))
    for op in order:
        if op == 0:
            image = ImageEnhance.Brightness(image).enhance(brightness)
        elif op == 1:
            image = ImageEnhance.Contrast(image).enhance(contrast)
        elif op == 2:
            image = ImageEnhance.Color(image).enhance(saturation)
        else:
            image = adjust_hue(image, hue)
    return image


def random_grayscale(image, p=GRAYSCALE_P):
    """RandomGrayscale(p): PIL's convert("L"), repeated over three channels."""
    if torch.rand(1) < p:
        return image.convert("L").convert("RGB")
    return image


def random_horizontal_flip(image, p=FLIP_P):
    if torch.rand(1) < p:
        return image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


def to_normalized_tensor(image, mean, std):
    """ToTensor (uint8 HWC -> float CHW / 255) then Normalize(mean, std)."""
    array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)
    return (tensor - mean[:, None, None]) / std[:, None, None]


def training_view(image, size, mean, std):
    """One view, in the order of the paper's released code (demo_seen.py):
    RandomResizedCrop, ColorJitter, RandomGrayscale, RandomHorizontalFlip, ToTensor, Normalize."""
    image = random_resized_crop(image, size)
    image = color_jitter(image)
    image = random_grayscale(image)
    image = random_horizontal_flip(image)
    return to_normalized_tensor(image, mean, std)


def center_view(image, size, mean, std):
    """Resize(size) (shorter side to size, longer side int(size * long / short), bilinear), then
    CenterCrop(size) (offsets with Python's round), ToTensor, Normalize."""
    width, height = image.size
    if not ((width <= height and width == size) or (height <= width and height == size)):
        if width < height:
            image = image.resize((size, int(size * height / width)), Image.BILINEAR)
        else:
            image = image.resize((int(size * width / height), size), Image.BILINEAR)
    width, height = image.size
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    return to_normalized_tensor(image, mean, std)


def lr_factor(epoch, epochs):
    """The paper's steps (x0.1 at epoch 120 of 200, x0.01 at 160) scaled to the run."""
    fraction = epoch / epochs
    return 0.01 if fraction >= 0.8 else 0.1 if fraction >= 0.6 else 1.0


@torch.no_grad()
def embed(net, inputs, device, batch=256):
    net.eval()
    return torch.cat([net(inputs[i:i + batch].to(device)).float().cpu() for i in range(0, len(inputs), batch)])


def knn_accuracy(memory, memory_labels, test, test_labels, classes, k=KNN_K, sigma=KNN_SIGMA):
    """Weighted kNN (Wu et al. 2018): each test row's min(k, memory size) most similar memory rows
    by cosine vote for their class with weight exp(s / sigma); top-1 accuracy in percent (a tie
    goes to the smaller class index, as argmax's first maximum)."""
    k = min(k, len(memory))
    correct = 0
    for start in range(0, len(test), 256):
        similarity = test[start:start + 256] @ memory.t()
        top_similarity, top_index = similarity.topk(k, dim=1, largest=True, sorted=True)
        weights = (top_similarity.double() / sigma).exp()
        votes = torch.zeros(len(top_index), classes, dtype=torch.float64)
        votes.scatter_add_(1, memory_labels[top_index], weights)
        correct += (votes.argmax(dim=1) == test_labels[start:start + 256]).sum().item()
    return 100.0 * correct / len(test)


def load_split(folder):
    entries = scan_folder(folder)
    return [load_rgb(path) for path, _ in entries], [label for _, label in entries]


def train_one_seed(args, seed, data, device):
    train_images, (memory_views, memory_labels), (test_views, test_labels), classes, mean, std = data
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    net = EmbeddingNet(args.width, args.dim, args.image_size <= 64).to(device)
    optimizer = sgd(net)
    m = args.batch
    steps = len(train_images) // m
    if steps == 0:
        raise SystemExit(f"{len(train_images)} training images make no full batch of {m}")
    curve = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        lr = LR * lr_factor(epoch, args.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        net.train()
        order = torch.randperm(len(train_images)).tolist()
        losses = []
        for step in range(steps):
            indices = order[step * m:(step + 1) * m]  # the rest waits for another epoch (drop_last)
            first, second = [], []
            for index in indices:  # as the released dataset: image i's first view, then its second
                first.append(training_view(train_images[index], args.image_size, mean, std))
                second.append(training_view(train_images[index], args.image_size, mean, std))
            inputs = torch.stack(first + second).to(device)
            losses.append(training_step(net, optimizer, inputs).item())
            if not math.isfinite(losses[-1]):
                raise SystemExit(f"seed {seed}, epoch {epoch + 1}, step {step + 1}: the loss became {losses[-1]}")
        knn = None
        if test_views is not None:
            knn = knn_accuracy(embed(net, memory_views, device), memory_labels,
                               embed(net, test_views, device), test_labels, classes)
        row = {"seed": seed, "epoch": epoch + 1, "loss": statistics.fmean(losses), "knn": knn,
               "lr": lr, "seconds": time.perf_counter() - start}
        print(json.dumps(row), flush=True)
        curve.append(knn)
    return curve


def markdown_table(curves, seeds):
    """Rows epoch 1..E; a kNN column per seed, then mean ± sample std over the seeds."""
    fmt = lambda value: "–" if value is None else f"{value:.2f}"
    lines = ["| epoch | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|---:|" + "---:|" * (len(seeds) + 1)]
    for epoch in range(len(curves[0])):
        values = [curve[epoch] for curve in curves]
        known = [v for v in values if v is not None]
        summary = "–"
        if known:
            summary = f"{statistics.fmean(known):.2f}"
            if len(known) > 1:
                summary += f" ± {statistics.stdev(known):.2f}"
        lines.append(f"| {epoch + 1} | " + " | ".join(fmt(v) for v in values) + f" | {summary} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="training folder (also the kNN memory, with its label folders)")
    parser.add_argument("--test", help="labelled folder scored with kNN after every epoch")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 base width (64 in the paper)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128, help="images per batch m; each gives two views")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seeds", default="0", help="comma-separated, one run each")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (augmentation always runs on the CPU)")
    args = parser.parse_args()
    if np is None:
        raise SystemExit("train.py needs numpy and pillow: pip install numpy pillow")
    if args.epochs < 1 or args.batch < 1:
        raise SystemExit("--epochs and --batch must be positive")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":  # plain fp32 convolutions, like Spreadout's f32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    loaded = time.perf_counter()
    train_images, train_labels = load_split(args.train)
    mean_list, std_list = channel_stats(train_images)
    mean, std = torch.tensor(mean_list), torch.tensor(std_list)
    test = None
    classes = 0
    memory = (None, None)
    if args.test:
        names = sorted({label for label in train_labels if label is not None})
        index = {name: i for i, name in enumerate(names)}
        keep = [i for i, label in enumerate(train_labels) if label is not None]
        memory = (torch.stack([center_view(train_images[i], args.image_size, mean, std) for i in keep]),
                  torch.tensor([index[train_labels[i]] for i in keep]))
        test_images, test_names = load_split(args.test)
        known = [i for i, name in enumerate(test_names) if name in index]
        if len(names) < 2 or not known:
            raise SystemExit(f"kNN needs label folders in {args.train} that {args.test} shares")
        if len(known) < len(test_images):
            print(f"scoring the {len(known)} of {len(test_images)} test images whose class is in the memory",
                  file=sys.stderr)
        test = (torch.stack([center_view(test_images[i], args.image_size, mean, std) for i in known]),
                torch.tensor([index[test_names[i]] for i in known]))
        classes = len(names)
    print(f"{len(train_images)} training images, mean {[round(v, 4) for v in mean_list]}, "
          f"std {[round(v, 4) for v in std_list]}; loaded in {time.perf_counter() - loaded:.1f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr, flush=True)

    data = (train_images, memory, test if test else (None, None), classes, mean, std)
    curves = [train_one_seed(args, seed, data, device) for seed in seeds]
    print()
    print(f"PyTorch reference kNN top-1 (%), ResNet-18 w{args.width}, {args.image_size} px, "
          f"batch {args.batch}x2, {args.epochs} epochs (std: sample, over seeds)")
    print()
    print(markdown_table(curves, seeds))


if __name__ == "__main__":
    main()
