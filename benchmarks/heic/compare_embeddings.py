#!/usr/bin/env python3
"""Compares two `spreadout embed` files of the same pictures in two formats.

Pairs rows by file name without its extension (photo-00001.heic with photo-00001.jpg) and prints
the cosine of each picture's two embeddings (min, mean) beside the cosine of each picture to the
most similar *other* picture of the same file: how close "the same picture" is, next to how close
the nearest different one is.

  python3 benchmarks/heic/compare_embeddings.py A.safetensors B.safetensors
"""

import json
import struct
import sys
from pathlib import PurePath

import numpy as np


def read(path):
    """The `embeddings` tensor (unit rows) and the `paths` metadata of a safetensors file."""
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
        data = file.read()
    tensor = header["embeddings"]
    assert tensor["dtype"] == "F32", tensor["dtype"]
    start, end = tensor["data_offsets"]
    embeddings = np.frombuffer(data[start:end], dtype="<f4").reshape(tensor["shape"])
    paths = json.loads(header["__metadata__"]["paths"])
    return {PurePath(path).stem: row for path, row in zip(paths, embeddings)}


def main():
    a, b = read(sys.argv[1]), read(sys.argv[2])
    names = sorted(a.keys() & b.keys())
    assert len(names) == len(a) == len(b), "the two folders hold different pictures"
    left = np.stack([a[name] for name in names])
    right = np.stack([b[name] for name in names])
    same = np.sum(left * right, axis=1)
    others = left @ left.T
    np.fill_diagonal(others, -np.inf)
    nearest_other = others.max(axis=1)
    print(f"pictures: {len(names)}")
    print(f"cosine, same picture in both formats: min {same.min():.4f}, mean {same.mean():.4f}")
    print(f"cosine, nearest other picture:        mean {nearest_other.mean():.4f}, max {nearest_other.max():.4f}")
    print(f"pairs below 0.99: {int(np.sum(same < 0.99))}")


if __name__ == "__main__":
    main()
