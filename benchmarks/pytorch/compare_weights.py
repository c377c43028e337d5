#!/usr/bin/env python3
"""Compares two safetensors files tensor by tensor, for benchmarks/gpu-parity/run.sh: prints the largest
relative difference |a - b| / (1 + |a|) over every value of every tensor (A is the reference) and
the tensor holding it, and exits with status 1 when it is over --tolerance (or when the files do
not hold the same tensors with the same shapes), 2 on unreadable input.

  python3 benchmarks/pytorch/compare_weights.py cpu/model.safetensors gpu/model.safetensors --tolerance 2e-3

Output, one line: `largest difference 1.234e-05 in layer1.0.conv1.weight (tolerance 0.002): pass`
(the tensor is `-` when every value is equal).
A NaN or infinity in either file counts as an infinite difference: a parity check must not pass a
diverged run. Standard library only (the GPU machine has no promise of numpy or safetensors):
an 8-byte little-endian header length, a JSON header of dtype, shape and data_offsets per tensor,
then the raw little-endian data.
"""

import argparse
import json
import math
import struct
import sys

# safetensors dtype -> struct format character (little-endian, standard sizes).
FORMATS = {"F64": "d", "F32": "f", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b",
           "U64": "Q", "U32": "I", "U16": "H", "U8": "B", "BOOL": "?"}


def read_safetensors(path):
    """{name: (dtype, shape, values)} of every tensor, values as a list of Python numbers."""
    with open(path, "rb") as file:
        blob = file.read()
    (length,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + length])
    data = memoryview(blob)[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        raw = data[begin:end]
        if dtype == "BF16":  # the top half of an f32: widen each 16-bit word by 16 zero bits
            words = struct.unpack(f"<{len(raw) // 2}H", raw)
            values = list(struct.unpack(f"<{len(words)}f", struct.pack(f"<{len(words)}I", *(w << 16 for w in words))))
        elif dtype in FORMATS:
            size = struct.calcsize("<" + FORMATS[dtype])
            values = list(struct.unpack(f"<{len(raw) // size}{FORMATS[dtype]}", raw))
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}, which this script does not read")
        tensors[name] = (dtype, shape, values)
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the reference (the CPU's model)")
    parser.add_argument("b")
    parser.add_argument("--tolerance", type=float, default=2e-3)
    args = parser.parse_args()
    try:
        a, b = read_safetensors(args.a), read_safetensors(args.b)
    except (OSError, ValueError, KeyError, struct.error) as error:
        print(f"cannot read the weights: {error}", file=sys.stderr)
        return 2
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        print(f"largest difference inf in {only[0]} (tolerance {args.tolerance:g}): FAIL, "
              f"{len(only)} tensors in one file only: {', '.join(only[:5])}{', ...' if len(only) > 5 else ''}")
        return 1
    worst, worst_name = 0.0, "-"
    for name in sorted(a):
        (dtype_a, shape_a, values_a), (dtype_b, shape_b, values_b) = a[name], b[name]
        if shape_a != shape_b:
            print(f"largest difference inf in {name} (tolerance {args.tolerance:g}): FAIL, "
                  f"shape {shape_a} against {shape_b}")
            return 1
        for x, y in zip(values_a, values_b):
            x, y = float(x), float(y)
            difference = abs(x - y) / (1 + abs(x)) if math.isfinite(x) and math.isfinite(y) else math.inf
            if difference > worst:
                worst, worst_name = difference, name
    verdict = "pass" if worst <= args.tolerance else "FAIL"
    print(f"largest difference {worst:.3e} in {worst_name} (tolerance {args.tolerance:g}): {verdict}")
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
