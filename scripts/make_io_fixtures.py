#!/usr/bin/python3
"""Writes the tiny fixtures of the io tests into tests/data/io/.

Run with the Debian interpreter (numpy + python3-torch):
    /usr/bin/python3 scripts/make_io_fixtures.py
Every array is a closed formula of arange so the C++ tests recompute the expected
values (tests/io/*_test.cpp); the formulas are listed in tests/data/io/README.md.
Hostile and corrupt files are crafted as bytes and never executed or loaded here.
"""
import collections
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


def tiny_state_dict():
    """state_dict() of conv(3->2, 1x1) + bn(2), values by formula (see README)."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)
            self.bn = torch.nn.BatchNorm2d(2)

    net = Tiny()
    with torch.no_grad():
        for i, (name, t) in enumerate(net.state_dict().items()):
            if t.dtype == torch.int64:
                t.fill_(7)
            else:
                t.copy_((torch.arange(t.numel(), dtype=torch.float32) * 0.1 + i).reshape(t.shape))
    return net.state_dict()  # OrderedDict with _metadata, as BasicSR saves it


def write_hostile_zip(name, pickle_bytes):
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", "3\n")


def write_torch_fixtures():
    import torch

    sd = tiny_state_dict()
    ema = collections.OrderedDict((k, v * 2 if v.is_floating_point() else v) for k, v in sd.items())
    torch.save({"params": sd, "params_ema": ema}, path("basicsr.pth"))
    torch.save(sd, path("bare.pth"))
    torch.save({"params_ema": ema}, path("ema_only.pth"))
    torch.save({"params": collections.OrderedDict(("module." + k, v) for k, v in sd.items())},
               path("module_prefix.pth"))
    torch.save({"model": sd, "epoch": 3}, path("nested.pth"))

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3.0
    dtypes = collections.OrderedDict()
    dtypes["f16"] = base.half()
    dtypes["bf16"] = base.bfloat16()
    dtypes["f64"] = base.double() / 7.0
    dtypes["i64"] = torch.arange(6, dtype=torch.int64) * 10000000000
    dtypes["i32"] = torch.arange(-3, 3, dtype=torch.int32)
    dtypes["i16"] = torch.arange(-3, 3, dtype=torch.int16) * 1000
    dtypes["i8"] = torch.arange(-3, 3, dtype=torch.int8)
    dtypes["u8"] = torch.arange(250, 256).to(torch.uint8)
    dtypes["bool"] = torch.arange(6) % 3 == 0
    dtypes["scalar"] = torch.tensor(3.5)
    dtypes["empty"] = torch.zeros(0, 3)
    torch.save(dtypes, path("dtypes.pth"))

    views = collections.OrderedDict()
    views["a"] = base
    views["b"] = base[1:, ::2]
    views["c"] = base.t()
    views["d"] = base[2]
    torch.save(views, path("views.pth"))
    torch.save({"w": torch.nn.Parameter(base.clone())}, path("parameter.pth"))

    # Hostile pickles, written as bytes: GLOBAL posix.system + REDUCE; builtins.eval via
    # STACK_GLOBAL; an unknown opcode; a BINGET of an unset memo slot. Never loaded here.
    write_hostile_zip("hostile_system.pth", b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    write_hostile_zip("hostile_eval.pth",
                      b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.")
    write_hostile_zip("bad_opcode.pth", b"\x80\x02}q\x00\xff.")
    write_hostile_zip("bad_memo.pth", b"\x80\x02h\x05.")

    good = open(path("basicsr.pth"), "rb").read()
    open(path("truncated.pth"), "wb").write(good[: len(good) // 2])

    # safetensors written by hand (the safetensors package is not installed).
    st = collections.OrderedDict()
    st["f32"] = base
    st["f16"] = base.half()
    st["bf16"] = base.bfloat16()
    st["i64"] = dtypes["i64"]
    st["bool"] = dtypes["bool"]
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.bool: "BOOL"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in st.items():
        raw = v.contiguous().view(torch.uint8).numpy().tobytes() if v.dtype != torch.bool \
            else v.numpy().astype(np.uint8).tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path("tensors.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    print("torch", torch.__version__)


if __name__ == "__main__":
    main()
