#!/usr/bin/env python3
"""Writes a tiny labelled image folder for benchmarks/gpu-parity/run.sh: OUT/train/<class>/NN.png and
OUT/test/<class>/NN.png, random RGB pixels, the same bytes for the same --seed.

  python3 benchmarks/pytorch/parity_data.py OUT [--classes 2] [--per-class 4] [--test-per-class 2] [--size 16]

Standard library only (PNG written with zlib and struct): the GPU machine has PyTorch but no
promise of numpy or Pillow, and `spreadout demo` cannot make a set this small (its data set is
fixed at 6 classes x 130 images and it always trains on it).
"""

import argparse
import random
import struct
import sys
import zlib
from pathlib import Path


def png_bytes(width, height, rgb_rows):
    """An 8-bit RGB PNG of `rgb_rows` (one bytes object of 3 * width values per row)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
    raw = b"".join(b"\x00" + row for row in rgb_rows)  # filter type 0 (None) on every row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=4, help="training images per class")
    parser.add_argument("--test-per-class", type=int, default=2)
    parser.add_argument("--size", type=int, default=16, help="width and height in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if any((args.out / split).exists() for split in ("train", "test")):
        sys.exit(f"{args.out} already holds train/ or test/; choose an empty folder")
    rng = random.Random(args.seed)
    for split, count in (("train", args.per_class), ("test", args.test_per_class)):
        for label in range(args.classes):
            folder = args.out / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                rows = [bytes(rng.randrange(256) for _ in range(3 * args.size)) for _ in range(args.size)]
                (folder / f"{index:02d}.png").write_bytes(png_bytes(args.size, args.size, rows))
    print(f"{args.classes} classes x ({args.per_class} train + {args.test_per_class} test) images of "
          f"{args.size} px in {args.out}")


if __name__ == "__main__":
    main()
