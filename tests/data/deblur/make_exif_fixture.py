#!/usr/bin/env python3
"""Writes exif_orientation6.jpg: a 24 x 16 (W x H) JPEG stored with a red 8 x 8
block at its top-left and blue elsewhere, carrying the EXIF tag Orientation = 6
("rotate 90 degrees clockwise to display"). Displayed (orientation applied) it
is 16 x 24 with the red block at the top-right. Needs Pillow:

    python3 -m venv /tmp/pil && /tmp/pil/bin/pip install pillow
    /tmp/pil/bin/python tests/data/deblur/make_exif_fixture.py
"""
from pathlib import Path

from PIL import Image

img = Image.new("RGB", (24, 16), (0, 0, 255))
for y in range(8):
    for x in range(8):
        img.putpixel((x, y), (255, 0, 0))
exif = Image.Exif()
exif[0x0112] = 6  # Orientation
img.save(Path(__file__).with_name("exif_orientation6.jpg"), quality=95, exif=exif.tobytes())
