#!/usr/bin/env python3
"""A folder shaped like a large photo library, small enough for a laptop's disk.

    python3 benchmarks/scale/generate.py DIR --images N [--size PX] [--workers W]

Writes N PNG files of SIZE x SIZE pixels (16 by default: about 200 bytes each, one 4 KiB block on
most file systems) under DIR/<year>/<day>/IMG_<n>.png, a thousand a day, as a camera's import
folders are laid out. Each picture is a background colour with three rectangles of other colours,
drawn from a seeded stream; every tenth file is a copy of the one before with its colours moved a
little (a re-encoded or brightened copy), so that near-duplicate searches have something to find.
The same N and SIZE always give byte-identical files. Standard library only.
"""

import argparse
import os
import random
import struct
import sys
import zlib
from multiprocessing import Pool

PER_DAY = 1000
DAYS_PER_YEAR = 100


def png(size, pixels):
    """An 8-bit RGB PNG of size x size pixels from `pixels` (rows of RGB bytes)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row for row in pixels)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def picture(index, size):
    """The pixels of picture `index`: a copy of `index - 1`'s, colours moved, every tenth."""
    source = index - 1 if index % 10 == 9 else index
    rng = random.Random(source * 2654435761 % 2**32)
    background = [rng.randrange(256) for _ in range(3)]
    shapes = []
    for _ in range(3):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = rng.randrange(x0, size) + 1, rng.randrange(y0, size) + 1
        shapes.append((x0, y0, x1, y1, [rng.randrange(256) for _ in range(3)]))
    shift = 12 if source != index else 0
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            color = background
            for x0, y0, x1, y1, fill in shapes:
                if x0 <= x < x1 and y0 <= y < y1:
                    color = fill
            row.extend(min(255, c + shift) for c in color)
        rows.append(bytes(row))
    return rows


def path_of(root, index):
    day = index // PER_DAY
    year = 2000 + day // DAYS_PER_YEAR
    return os.path.join(root, str(year), f"{day % DAYS_PER_YEAR:03d}", f"IMG_{index:07d}.png")


def write_range(job):
    root, start, stop, size = job
    for index in range(start, stop):
        path = path_of(root, index)
        if index % PER_DAY == 0 or index == start:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(png(size, picture(index, size)))
    return stop - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if os.path.exists(args.dir) and os.listdir(args.dir):
        sys.exit(f"{args.dir} is not empty; give a new folder")
    jobs = [(args.dir, start, min(start + PER_DAY, args.images), args.size) for start in range(0, args.images, PER_DAY)]
    with Pool(args.workers) as pool:
        written = sum(pool.imap_unordered(write_range, jobs))
    print(f"wrote {written} images of {args.size}x{args.size} px under {args.dir}")


if __name__ == "__main__":
    main()
