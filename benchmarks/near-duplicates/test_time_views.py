#!/usr/bin/env python3
"""Would scoring a pair by the best of a few fixed test-time views find more planted copies?

Measures, on a planted folder (`spreadout plant-copies`) embedded three times by the same model
(`spreadout embed`): as it is (the whole image), its centre crop (the middle 80 % of each side),
and mirrored. A pair's score is either the plain cosine of the whole images, or the best of
whole–whole, crop–whole, whole–crop, mirror–whole and whole–mirror. For each, the lowest
threshold keeping pair precision at or above 0.95 and the recall there, overall and per edit.

  python3 benchmarks/near-duplicates/test_time_views.py make PLANTED OUT          # writes OUT/crop and OUT/mirror
  python3 benchmarks/near-duplicates/test_time_views.py score PLANTED WHOLE.st CROP.st MIRROR.st

The finder now scores pairs this way (`spreadout duplicates`; `--whole-images` for the plain
cosine). Its zoomed view is the planted crop's own region, the best case for crops; `recrop`
copies a planted folder with every crop copy replaced by one of random size (60–90 % of each
side) and position, seeded, to measure the finder off that best case:

  python3 benchmarks/near-duplicates/test_time_views.py recrop PLANTED OUT
"""

import csv
import json
import struct
import sys
from pathlib import Path

import numpy as np


def make(planted: Path, out: Path) -> None:
    from PIL import Image, ImageOps

    for path in sorted(p for p in planted.rglob("*") if p.suffix.lower() in {".jpg", ".png"}):
        relative = path.relative_to(planted)
        image = Image.open(path).convert("RGB")
        w, h = image.size
        crop = image.crop((round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9)))
        for name, view in (("crop", crop), ("mirror", ImageOps.mirror(image))):
            target = out / name / relative.with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            view.save(target)


def read(path: Path, root: Path):
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
        data = file.read()
    tensor = header["embeddings"]
    start, end = tensor["data_offsets"]
    rows = np.frombuffer(data[start:end], dtype="<f4").reshape(tensor["shape"])
    paths = json.loads(header["__metadata__"]["paths"])
    # `spreadout embed` writes the paths as it was given the folder: relative to it either way.
    keys = [str(Path(p).relative_to(root).with_suffix("")) for p in paths]
    return dict(zip(keys, rows))


def score(planted: Path, whole_file: Path, crop_file: Path, mirror_file: Path) -> None:
    whole = read(whole_file, planted)
    crop = read(crop_file, crop_file.parent / "crop")
    mirror = read(mirror_file, mirror_file.parent / "mirror")
    names = sorted(whole)
    index = {name: i for i, name in enumerate(names)}
    w = np.stack([whole[n] for n in names])
    c = np.stack([crop[n] for n in names])
    m = np.stack([mirror[n] for n in names])
    plain = w @ w.T
    best = np.maximum.reduce([plain, c @ w.T, w @ c.T, m @ w.T, w @ m.T])
    planted_pairs = {}
    with open(planted / "planted-copies.csv") as file:
        for row in csv.DictReader(file):
            a, b = index[str(Path(row["original"]).with_suffix(""))], index[str(Path(row["copy"]).with_suffix(""))]
            planted_pairs[(min(a, b), max(a, b))] = row["edit"]
    upper = np.triu_indices(len(names), 1)
    truth = np.array([(a, b) in planted_pairs for a, b in zip(*upper)])
    edits = np.array([planted_pairs.get((a, b), "") for a, b in zip(*upper)])
    for label, matrix in (("whole image only", plain), ("best of the views", best)):
        scores = matrix[upper]
        order = np.argsort(-scores)
        hits = np.cumsum(truth[order])
        precision = hits / np.arange(1, len(order) + 1)
        ok = np.nonzero(precision >= 0.95)[0]
        cut = ok.max() if len(ok) else 0
        threshold = scores[order[cut]]
        found = scores >= threshold
        per_edit = {e: (found & (edits == e)).sum() / max((edits == e).sum(), 1) for e in ["jpeg", "downscale", "crop", "brighten", "noise"]}
        print(f"{label}: threshold {threshold:.4f}, precision {precision[cut]:.3f}, recall {hits[cut] / truth.sum():.3f}; "
              + ", ".join(f"{e} {r:.3f}" for e, r in per_edit.items()))


def recrop(planted: Path, out: Path) -> None:
    import random
    import shutil

    from PIL import Image

    shutil.copytree(planted, out)
    rng = random.Random(1)
    with open(out / "planted-copies.csv") as file:
        rows = [row for row in csv.DictReader(file) if row["edit"] == "crop"]
    for row in rows:
        image = Image.open(out / row["original"]).convert("RGB")
        w, h = image.size
        side = rng.uniform(0.6, 0.9)
        cw, ch = round(w * side), round(h * side)
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image.crop((left, top, left + cw, top + ch)).save(out / row["copy"])


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "recrop":
        recrop(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        score(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
