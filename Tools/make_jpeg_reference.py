"""JPEG stills as PIL decodes them, for the Swift ImageDecoder's test (Tests/AffectMediaTests/ImageDecoderTests.swift).

    python Tools/make_jpeg_reference.py [--remake]

Makes the small JPEGs under Tests/Fixtures/faces from the public-domain portrait scripts/demo/astronaut.jpg
(only those missing, or all with --remake: re-encoding depends on the encoder's version, so committed files
stay put), then writes Tests/Fixtures/faces/jpeg_reference.json: for each file, what
`np.asarray(Image.open(f).convert("RGB"))` gives: size, an FNV-1a 64-bit hash of the RGB bytes (row-major)
and every 101st byte, so a mismatch shows how far off it is.

- astronaut-420.jpg: the portrait re-encoded 4:2:0 by FFmpeg (what phones and cameras write).
- astronaut-422-progressive.jpg: a 191x157 crop, 4:2:2, progressive (odd sizes exercise the upsampling edges).
- astronaut-gray.jpg: a 97x83 greyscale crop (PIL mode L, replicated by convert("RGB")).
- astronaut-cmyk.jpg: a 64x48 CMYK crop (Adobe inverted CMYK, as PIL writes and reads it).

Needs Pillow and numpy (Tools/requirements.txt) and ffmpeg.
"""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image, features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "scripts/demo/astronaut.jpg")
OUT = os.path.join(ROOT, "Tests/Fixtures/faces")
STRIDE = 101


def make(name, remake):
    path = os.path.join(OUT, name)
    if os.path.exists(path) and not remake:
        return path
    src = Image.open(SOURCE).convert("RGB")
    if name == "astronaut-420.jpg":
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", SOURCE, "-pix_fmt", "yuvj420p", "-q:v", "3", path], check=True)
    elif name == "astronaut-422-progressive.jpg":
        src.crop((100, 60, 291, 217)).save(path, quality=85, subsampling=1, progressive=True)
    elif name == "astronaut-gray.jpg":
        src.crop((140, 90, 237, 173)).convert("L").save(path, quality=85)
    elif name == "astronaut-cmyk.jpg":
        src.crop((160, 100, 224, 148)).convert("CMYK").save(path, quality=90)
    return path


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    remake = "--remake" in sys.argv[1:]
    images = {}
    for name in ["astronaut-420.jpg", "astronaut-422-progressive.jpg", "astronaut-gray.jpg", "astronaut-cmyk.jpg"]:
        path = make(name, remake)
        im = Image.open(path)
        mode = im.mode
        rgb = np.asarray(im.convert("RGB"))
        raw = rgb.tobytes()
        images[name] = {"mode": mode, "width": rgb.shape[1], "height": rgb.shape[0],
                        "fnv1a64": f"{fnv1a64(raw):016x}", "stride": STRIDE, "samples": list(raw[::STRIDE])}
    out = {"pillow": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "images": images}
    with open(os.path.join(OUT, "jpeg_reference.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
