#!/usr/bin/env python3
"""Writes a folder of real-photo JPEGs (or HEICs) for the decode, augment and format benchmarks.

The photographs are the colour ones scikit-image ships inside its wheel (astronaut, coffee,
chelsea, rocket, motorcycles, ...), read straight from the wheel file, so nothing is fetched at
run time. Each output is a random crop of --size (640x480 by default; scaled up where a photo is
smaller), sometimes mirrored, saved at quality 90: the size and kind of file a camera library
holds after export, unlike 32 px PNGs. The crops depend only on --seed and --size, so two calls
that differ only in --format write the same pictures as JPEG and as HEIC (HEIC needs pillow-heif).

  python3 benchmarks/common/make_photos.py WHEEL OUT_DIR [COUNT] [--size WxH] [--format jpeg|heic] [--seed N]
"""

import argparse
import io
import random
import zipfile
from pathlib import Path

from PIL import Image

PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
          "motorcycle_right.png", "color.png", "ihc.png", "retina.jpg", "hubble_deep_field.jpg"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("count", type=int, nargs="?", default=2000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--format", choices=["jpeg", "heic"], default="jpeg")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    if args.format == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    suffix = {"jpeg": "jpg", "heic": "heic"}[args.format]
    sources = []
    with zipfile.ZipFile(args.wheel) as archive:
        for name in PHOTOS:
            with archive.open(f"skimage/data/{name}") as file:
                sources.append(Image.open(io.BytesIO(file.read())).convert("RGB"))
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for index in range(args.count):
        photo = rng.choice(sources)
        scale = max(width / photo.width, height / photo.height, 1.0) * rng.uniform(1.0, 1.6)
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
        left, top = rng.randint(0, photo.width - width), rng.randint(0, photo.height - height)
        crop = photo.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop.save(args.out / f"photo-{index:05d}.{suffix}", quality=90)


if __name__ == "__main__":
    main()
