#!/usr/bin/env python3
"""Saves every image under SRC (class folders allowed) again as quality-90 JPEG or HEIC, enlarged
by --scale with a bicubic filter, into one flat folder named CLASS-NAME.EXT, so that two calls
with different --format write the same pictures in two formats, paired by file stem. HEIC needs
pillow-heif.

  python3 benchmarks/heic/reencode.py SRC OUT --format jpeg|heic [--scale 4]
"""

import argparse
from pathlib import Path

from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--format", choices=["jpeg", "heic"], required=True)
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    if args.format == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    suffix = {"jpeg": "jpg", "heic": "heic"}[args.format]
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in args.src.rglob("*") if p.is_file()):
        image = Image.open(path).convert("RGB")
        image = image.resize((image.width * args.scale, image.height * args.scale), Image.BICUBIC)
        name = "-".join(path.relative_to(args.src).with_suffix("").parts)
        image.save(args.out / f"{name}.{suffix}", quality=90)


if __name__ == "__main__":
    main()
