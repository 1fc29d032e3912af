#!/usr/bin/python3
"""Writes the tiny fixtures of the io tests into tests/data/io/.

Run with the Debian interpreter (numpy + python3-torch):
    /usr/bin/python3 scripts/make_io_fixtures.py
Every array is a closed formula of arange so the C++ tests recompute the expected
values (tests/io/*_test.cpp); the formulas are listed in tests/data/io/README.md.
Hostile and corrupt files are crafted as bytes and never executed or loaded here.
"""
import collections
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "io")


def path(name):
    return os.path.join(OUT, name)


def f4_base():
    return (np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3.0).astype(np.float32)


def mask_base():
    # (M, 1, H, W) bool, like SAM-Deblur's grouped masks.
    m, h, w = np.meshgrid(np.arange(3), np.arange(4), np.arange(5), indexing="ij")
    return ((m + h * w) % 3 == 0)[:, None, :, :]


def write_npy_fixtures():
    np.save(path("f4_c.npy"), f4_base())
    np.save(path("f4_fortran.npy"), np.asfortranarray(f4_base()))
    np.save(path("f8.npy"), np.arange(6, dtype=np.float64).reshape(2, 3) / 7.0)
    np.save(path("f2.npy"), (np.arange(5) * 0.25).astype(np.float16))
    np.save(path("i4.npy"), np.arange(-3, 3, dtype=np.int32))
    np.save(path("i8.npy"), np.arange(6, dtype=np.int64).reshape(3, 2) * 10000000000)
    np.save(path("u1.npy"), np.arange(250, 256, dtype=np.uint8))
    np.save(path("mask_b1.npy"), mask_base())
    np.save(path("mask_b1_fortran.npy"), np.asfortranarray(mask_base()))
    np.save(path("scalar_f4.npy"), np.array(3.5, dtype=np.float32))
    for version in ((2, 0), (3, 0)):
        with open(path("f4_v%d.npy" % version[0]), "wb") as f:
            np.lib.format.write_array(f, f4_base(), version=version)
    np.save(path("f4_bigendian.npy"), f4_base().astype(">f4"))
    np.save(path("object.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
    good = open(path("f4_c.npy"), "rb").read()
    open(path("f4_truncated.npy"), "wb").write(good[:-5])
    open(path("f4_truncated_header.npy"), "wb").write(good[:40])
    scores = np.array([0.5, 0.25, 0.125], dtype=np.float32)
    np.savez(path("masks_stored.npz"), masks=mask_base(), scores=scores)
    np.savez_compressed(path("masks_deflated.npz"), masks=mask_base(), scores=scores)
    z = open(path("masks_stored.npz"), "rb").read()
    open(path("masks_truncated.npz"), "wb").write(z[: len(z) // 2])


def main():
    os.makedirs(OUT, exist_ok=True)
    write_npy_fixtures()
    if "--npy-only" not in sys.argv:
        import torch  # noqa: F401  (checked lazily so npy fixtures need numpy only)
        write_torch_fixtures()
    print("numpy", np.__version__)


def write_torch_fixtures():
    pass


if __name__ == "__main__":
    main()
