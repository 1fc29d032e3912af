#!/usr/bin/env python3
"""Golden fixtures for samdeblur's image I/O conventions and PSNR/SSIM.

Runs the official SAM-Deblur (BasicSR fork) functions on small deterministic
images and records their outputs in tests/data/metrics/expected.json, which
tests/metrics/psnr_ssim_test.cpp and tests/io/image_test.cpp compare against.

Regenerate (Debian's python3 with python3-torch 1.13, numpy, python3-opencv):
    PYTHONPATH=/tmp/ref/sam-deblur /usr/bin/python3 scripts/make_metric_fixtures.py \
        [--ref /tmp/ref/sam-deblur] [--out tests/data/metrics]

The official module imports skimage, torchvision, lmdb and tqdm, none of which
the computed functions use; they are replaced by empty stand-ins. _ssim_3d
moves its tensors to CUDA; .cuda() is patched to a no-op so it runs on the CPU
in float32 (the published numbers were computed on CUDA, also in float32).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import torch

FORMAT_VERSION = 1


def num(v):
    """JSON number; +inf (PSNR of identical images) is written as null."""
    v = float(v)
    assert not math.isnan(v)
    return None if math.isinf(v) else v


def install_stubs():
    skimage = types.ModuleType("skimage")
    skimage_metrics = types.ModuleType("skimage.metrics")
    skimage_metrics.structural_similarity = None
    skimage.metrics = skimage_metrics
    torchvision = types.ModuleType("torchvision")
    torchvision_utils = types.ModuleType("torchvision.utils")
    torchvision_utils.make_grid = None
    torchvision.utils = torchvision_utils
    lmdb = types.ModuleType("lmdb")
    tqdm = types.ModuleType("tqdm")
    tqdm.tqdm = None
    sys.modules.update({
        "skimage": skimage, "skimage.metrics": skimage_metrics,
        "torchvision": torchvision, "torchvision.utils": torchvision_utils,
        "lmdb": lmdb, "tqdm": tqdm,
    })
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self


class Float64Ssim3d:
    """Runs the official _ssim_3d in float64: Tensor.float() -> double and a
    float64 Conv3d (its float64 kernel is then assigned without rounding).
    This is the exact value of the official formula, free of the float32
    rounding that makes the official float32 result content-dependent."""

    def __enter__(self):
        self.saved = (torch.Tensor.float, torch.nn.Conv3d)
        base = torch.nn.Conv3d

        class Conv3d64(base):
            def __init__(self, *args, **kwargs):
                kwargs["dtype"] = torch.float64
                super().__init__(*args, **kwargs)

        torch.Tensor.float = torch.Tensor.double
        torch.nn.Conv3d = Conv3d64
        return self

    def __exit__(self, *exc):
        torch.Tensor.float, torch.nn.Conv3d = self.saved
        return False


def make_pairs():
    """Deterministic uint8 image pairs: name -> (output, ground truth)."""
    rng = np.random.RandomState(20240611)
    pairs = {}

    # Colour noise plus gradients, 37x53 (odd sizes catch off-by-one crops).
    h, w = 37, 53
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([4.0 * xx + 2.0 * yy, 255.0 - 3.0 * yy - xx,
                     128.0 + 90.0 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], axis=2)
    gt = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).round().astype(np.uint8)
    out = np.clip(gt.astype(np.float64) + rng.normal(0, 12, (h, w, 3)), 0, 255)
    pairs["noise"] = (out.round().astype(np.uint8), gt)
    pairs["identical"] = (gt.copy(), gt.copy())

    # Near-black: every value is 0 or 1, except one bright pixel in the
    # ground truth's corner, so crop_border=4 flips max_value from 255 to 1.
    h, w = 24, 30
    gt = rng.randint(0, 2, (h, w, 3)).astype(np.uint8)
    out = rng.randint(0, 2, (h, w, 3)).astype(np.uint8)
    out[0, 0, :] = 255
    pairs["dark"] = (out, gt)

    # Nearly flat bright image: stresses float32 cancellation in sigma^2.
    h, w = 33, 41
    gt = np.full((h, w, 3), 200, np.uint8)
    gt[10:20, 12:30, 1] = 201
    out = gt.copy()
    idx = rng.randint(0, h * w * 3, 60)
    out.reshape(-1)[idx] = 198
    pairs["flat"] = (out, gt)

    # Single-channel (H, W) pair.
    h, w = 29, 31
    gt = rng.randint(0, 256, (h, w)).astype(np.uint8)
    out = np.clip(gt.astype(np.int32) + rng.randint(-15, 16, (h, w)), 0, 255).astype(np.uint8)
    pairs["gray"] = (out, gt)
    return pairs


def tensor2img_cases(img_util):
    """Float tensors whose value*255 lands exactly on .5 (numpy rounds half
    to even), plus out-of-range values; and the official uint8 outputs."""
    values = []
    for k in list(range(0, 12)) + [127, 128, 200, 253, 254]:
        target = np.float32(k + 0.5)
        x = np.float32((k + 0.5) / 255.0)
        for step in range(-3, 4):
            cand = x
            for _ in range(abs(step)):
                cand = np.nextafter(cand, np.float32(np.sign(step)), dtype=np.float32)
            if np.float32(cand * np.float32(255.0)) == target:
                values.append(float(cand))
                break
        values.append(float(np.nextafter(x, np.float32(0), dtype=np.float32)))
        values.append(float(np.nextafter(x, np.float32(1), dtype=np.float32)))
    values += [-0.25, -1e-8, 0.0, 1.0, 1.0 + 1e-6, 3.5, 0.5, 0.25, 1.0 / 3.0, 2.0 / 3.0]
    n = len(values)
    rng = np.random.RandomState(7)
    w = 10
    h = (n + w - 1) // w
    flat = np.array(values + [0.0] * (h * w - n), np.float32)
    chw = np.stack([flat, rng.permutation(flat), rng.permutation(flat)]).reshape(3, h, w)
    t = torch.from_numpy(chw.copy())
    rgb_out = img_util.tensor2img(t)
    rgb_out4 = img_util.tensor2img(t.unsqueeze(0))
    assert np.array_equal(rgb_out, rgb_out4)
    gray_out = img_util.tensor2img(t[:1])
    exact = sum(1 for v in values if float(np.float32(np.float32(v) * np.float32(255.0))) % 1.0 == 0.5)
    return {
        "shape": [3, h, w],
        "values": [float(v) for v in chw.reshape(-1)],
        "bgr_hwc": rgb_out.reshape(-1).tolist(),
        "gray_hw": gray_out.reshape(-1).tolist(),
        "num_half_boundaries": exact,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", default="/tmp/ref/sam-deblur")
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "metrics"))
    args = parser.parse_args()
    sys.path.insert(0, args.ref)
    install_stubs()
    from basicsr.metrics import psnr_ssim
    from basicsr.utils import img_util

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    expected = {
        "format_version": FORMAT_VERSION,
        "generator": "scripts/make_metric_fixtures.py",
        "versions": {
            "torch": torch.__version__, "numpy": np.__version__, "cv2": cv2.__version__,
            "python": sys.version.split()[0],
            "reference": "HPLQAQ/SAM-Deblur@" + subprocess.check_output(
                ["git", "-C", args.ref, "rev-parse", "HEAD"], text=True).strip(),
        },
        "pairs": {},
    }

    for name, (out, gt) in make_pairs().items():
        files = {"output": f"{name}_out.png", "gt": f"{name}_gt.png"}
        if name == "identical":  # reuses the noise ground truth for both images
            files = {"output": "noise_gt.png", "gt": "noise_gt.png"}
        for key, img in (("output", out), ("gt", gt)):
            path = os.path.join(args.out, files[key])
            assert cv2.imwrite(path, img)
            with open(path, "rb") as f:
                back = img_util.imfrombytes(f.read(),
                                            flag="grayscale" if img.ndim == 2 else "color")
            assert np.array_equal(back, img), path
        cases = []
        for crop in (0, 4):
            for y in (False, True):
                cases.append({"metric": "psnr", "crop_border": crop, "test_y_channel": y,
                              "value": num(psnr_ssim.calculate_psnr(out, gt, crop, test_y_channel=y))})
                for s3d in ((True, False) if not y else (True,)):
                    v = psnr_ssim.calculate_ssim(out, gt, crop, test_y_channel=y, ssim3d=s3d)
                    case = {"metric": "ssim", "crop_border": crop, "test_y_channel": y,
                            "ssim3d": s3d, "value": num(v)}
                    if s3d and not y:
                        # "value": the official float32 run (CPU); "value_f64":
                        # the same code in float64.
                        with Float64Ssim3d():
                            case["value_f64"] = num(psnr_ssim.calculate_ssim(
                                out, gt, crop, test_y_channel=y, ssim3d=s3d))
                    cases.append(case)
        expected["pairs"][name] = {"files": files, "channels": 1 if out.ndim == 2 else 3,
                                   "cases": cases}

    # image_to_tensor / read_mask_png: every uint8 value, official
    # imfrombytes(float32=True) + img2tensor(bgr2rgb=True).
    grid = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rng = np.random.RandomState(3)
    colour = np.stack([grid, rng.permutation(grid.reshape(-1)).reshape(16, 16), grid.T], axis=2)
    cv2.imwrite(os.path.join(args.out, "all_values_bgr.png"), colour)
    cv2.imwrite(os.path.join(args.out, "all_values_gray.png"), grid)
    with open(os.path.join(args.out, "all_values_bgr.png"), "rb") as f:
        t = img_util.img2tensor(img_util.imfrombytes(f.read(), float32=True), bgr2rgb=True)
    with open(os.path.join(args.out, "all_values_gray.png"), "rb") as f:
        g = img_util.imfrombytes(f.read(), flag="grayscale", float32=True)
    expected["image_to_tensor"] = {
        "file": "all_values_bgr.png", "shape": list(t.shape),
        "values": [float(v) for v in t.reshape(-1).numpy()],
    }
    expected["mask"] = {
        "file": "all_values_gray.png", "shape": [1] + list(g.shape),
        "values": [float(v) for v in g.reshape(-1)],
    }
    expected["tensor2img"] = tensor2img_cases(img_util)

    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.join(args.out, "expected.json"))


if __name__ == "__main__":
    main()
