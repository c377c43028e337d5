#!/usr/bin/env python3
"""Writes a folder of real-photo JPEGs for the decode and augment benchmark.

The photographs are the colour ones scikit-image ships inside its wheel (astronaut, coffee,
chelsea, rocket, motorcycles, ...), read straight from the wheel file, so nothing is fetched at
run time. Each output is a random 640x480 crop (scaled up where a photo is smaller), sometimes
mirrored, saved as a quality-90 JPEG: the size and kind of file a camera library holds after
export, unlike 32 px PNGs.

  python3 bench/make_photos.py WHEEL OUT_DIR [COUNT]
"""

import io
import random
import sys
import zipfile
from pathlib import Path

from PIL import Image

PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
          "motorcycle_right.png", "color.png", "ihc.png", "retina.jpg", "hubble_deep_field.jpg"]


def main():
    wheel, out = Path(sys.argv[1]), Path(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    sources = []
    with zipfile.ZipFile(wheel) as archive:
        for name in PHOTOS:
            with archive.open(f"skimage/data/{name}") as file:
                sources.append(Image.open(io.BytesIO(file.read())).convert("RGB"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for index in range(count):
        photo = rng.choice(sources)
        scale = max(640 / photo.width, 480 / photo.height, 1.0) * rng.uniform(1.0, 1.6)
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
        left, top = rng.randint(0, photo.width - 640), rng.randint(0, photo.height - 480)
        crop = photo.crop((left, top, left + 640, top + 480))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop.save(out / f"photo-{index:05d}.jpg", quality=90)


if __name__ == "__main__":
    main()
