#!/usr/bin/env python3
"""End-to-end evaluation fixtures from the official SAM-Deblur code.

Writes tests/data/eval/: a tiny benchmark (input/, target/, grouped_masks/*.npz,
input_mask/*.png), tiny random-weight checkpoints of the four ablation models
saved as BasicSR does ({'params': state_dict}), and expected.json with the
per-image PSNR / SSIM / PSNR(input) that the official pipeline computes
(official loaders' conversions, official forward, tensor2img, calculate_psnr,
calculate_ssim with ssim3d). tests/eval/sdb_eval_test.cpp runs `sdb-eval` on
the same files and compares.

Run:  PYTHONPATH=/path/to/SAM-Deblur /usr/bin/python3 scripts/make_eval_fixtures.py
(Debian python3-torch 1.13, numpy, python3-opencv; no torchvision/skimage
needed: they are stubbed). The official code is imported, never vendored.
"""
import importlib.util
import json
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import torch

ROOT = os.environ.get("SAMDEBLUR_OFFICIAL", "/tmp/ref/sam-deblur")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "eval")


def stub_modules():
    tv = types.ModuleType("torchvision")
    tv_utils = types.ModuleType("torchvision.utils")
    tv_utils.make_grid = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("make_grid unused"))
    tv_tf = types.ModuleType("torchvision.transforms")
    tv_tff = types.ModuleType("torchvision.transforms.functional")
    tv_tff.normalize = lambda *a, **k: None
    sys.modules.update({"torchvision": tv, "torchvision.utils": tv_utils, "torchvision.transforms": tv_tf,
                        "torchvision.transforms.functional": tv_tff})
    sk = types.ModuleType("skimage")
    skm = types.ModuleType("skimage.metrics")
    skm.structural_similarity = lambda *a, **k: 0.0
    sys.modules.update({"skimage": sk, "skimage.metrics": skm})
    for pkg in ["basicsr", "basicsr.models", "basicsr.models.archs", "basicsr.metrics", "basicsr.utils"]:
        sys.modules[pkg] = types.ModuleType(pkg)


def load(rel, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def make_images(rng, h, w):
    # Smooth random texture with edges, then a horizontal motion blur.
    base = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    sharp = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(3):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        sharp[y0:y0 + rng.integers(4, h // 2), x0:x0 + rng.integers(4, w // 2)] = rng.random(3)
    sharp = np.clip(sharp * 255.0, 0, 255).astype(np.uint8)
    kernel = np.zeros((1, 7), np.float32)
    kernel[0, :] = 1.0 / 7.0
    blurry = cv2.filter2D(sharp, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return blurry, sharp


def make_label_map(rng, h, w, regions):
    label = np.zeros((h, w), np.uint8)
    for k in range(regions):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        label[y0:y0 + rng.integers(3, h // 2), x0:x0 + rng.integers(3, w // 2)] = 2 * (k + 1)
    return label


def main():
    stub_modules()
    torch.set_num_threads(1)
    load("basicsr/utils/matlab_functions.py", "basicsr.utils.matlab_functions")
    sys.modules["basicsr.utils"].bgr2ycbcr = sys.modules["basicsr.utils.matlab_functions"].bgr2ycbcr
    load("basicsr/metrics/metric_util.py", "basicsr.metrics.metric_util")
    psnr_ssim = load("basicsr/metrics/psnr_ssim.py", "basicsr.metrics.psnr_ssim")
    img_util = load("basicsr/utils/img_util.py", "basicsr.utils.img_util")
    import logging
    sys.modules["basicsr.utils"].get_root_logger = lambda *a, **k: logging.getLogger("basicsr")
    load("basicsr/models/archs/arch_util.py", "basicsr.models.archs.arch_util")
    load("basicsr/models/archs/local_arch.py", "basicsr.models.archs.local_arch")
    load("basicsr/models/archs/seg_local_arch.py", "basicsr.models.archs.seg_local_arch")
    nafnet = load("basicsr/models/archs/NAFNet_arch.py", "basicsr.models.archs.NAFNet_arch")
    segnet = load("basicsr/models/archs/SegNAFNet_arch.py", "basicsr.models.archs.SegNAFNet_arch")
    sys.modules["basicsr.utils"].FileClient = object
    sys.modules["basicsr.utils"].imfrombytes = img_util.imfrombytes
    sys.modules["basicsr.utils"].scandir = None
    group_ds = load("basicsr/data/paired_image_group_mask_dataset.py", "basicsr.data.pgm")
    mask_ds = load("basicsr/data/paired_image_mask_dataset.py", "basicsr.data.pm")
    # The official _ssim_3d moves tensors to CUDA; keep them on the CPU.
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self

    rng = np.random.default_rng(2024)
    for sub in ["input", "target", "grouped_masks", "input_mask", "checkpoints"]:
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    names, sizes = ["img_a", "img_b", "img_c"], [(37, 45), (40, 52), (33, 64)]
    for name, (h, w) in zip(names, sizes):
        blurry, sharp = make_images(rng, h, w)
        cv2.imwrite(os.path.join(OUT, "input", name + ".png"), blurry)
        cv2.imwrite(os.path.join(OUT, "target", name + ".png"), sharp)
        label = make_label_map(rng, h, w, 4)
        cv2.imwrite(os.path.join(OUT, "input_mask", name + ".png"), label)
        # 2_masks_to_grouped_masks.py: the unique grey values as bool masks (M,1,H,W).
        grey = torch.from_numpy(label.astype(np.float32) / 255.0).unsqueeze(0)
        masks = torch.stack([(grey == v).bool() for v in torch.unique(grey)])
        np.savez_compressed(os.path.join(OUT, "grouped_masks", name + ".npz"), masks=masks.numpy())

    small = dict(width=8, enc_blk_nums=[1, 1], middle_blk_num=1, dec_blk_nums=[1, 1])
    variants = {
        "NAFNet": ("NAFNetLocal", dict(small, train_size=(1, 3, 16, 16)), None),
        "MaskNAFNet": ("NAFNetLocal", dict(small, mask=True, train_size=(1, 3, 16, 16)), "mask"),
        "SegNAFNet": ("SegNAFNetLocal", dict(small, seg_channel=2, train_size=(1, 3, 16, 16)), "seg"),
        "SegNAFNet-plain": ("SegNAFNet", dict(small, seg_channel=2), "seg"),
    }
    expected = {"versions": {"torch": torch.__version__, "numpy": np.__version__, "cv2": cv2.__version__},
                "models": {}}
    try:
        expected["versions"]["reference_commit"] = subprocess.check_output(
            ["git", "-C", ROOT, "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        pass
    for vname, (arch, kwargs, kind) in variants.items():
        torch.manual_seed(7)
        cls = {"NAFNetLocal": nafnet.NAFNetLocal, "SegNAFNetLocal": segnet.SegNAFNetLocal,
               "SegNAFNet": segnet.SegNAFNet}[arch]
        net = cls(img_channel=3, **kwargs)
        with torch.no_grad():
            for k, p in net.named_parameters():
                if k.endswith("beta") or k.endswith("gamma"):
                    p.normal_(0, 0.5)
            # A small residual keeps outputs near the input, so that some images
            # collapse (MCR) and some do not.
            net.ending.weight.mul_(0.3)
            net.ending.bias.mul_(0.3)
        net.eval()
        ckpt = os.path.join(OUT, "checkpoints", vname + ".pth")
        torch.save({"params": net.state_dict()}, ckpt)
        per_image = {}
        for name in names:
            img_lq = img_util.imfrombytes(open(os.path.join(OUT, "input", name + ".png"), "rb").read(), float32=True)
            img_gt = img_util.imfrombytes(open(os.path.join(OUT, "target", name + ".png"), "rb").read(), float32=True)
            lq, gt = img_util.img2tensor([img_lq, img_gt], bgr2rgb=True, float32=True)
            inp_lq = lq
            with torch.no_grad():
                if kind == "seg":
                    m = np.load(os.path.join(OUT, "grouped_masks", name + ".npz"))["masks"]
                    m = group_ds.masks2tensor(group_ds.remove_zero_slices(m), float32=True)
                    out = net(lq.unsqueeze(0), [m])
                elif kind == "mask":
                    mk = img_util.imfrombytes(open(os.path.join(OUT, "input_mask", name + ".png"), "rb").read(),
                                              flag="grayscale", float32=True)
                    mk = mask_ds.img2tensor(mk, bgr2rgb=False, float32=True)
                    out = net(torch.cat([lq, mk], 0).unsqueeze(0))
                else:
                    out = net(lq.unsqueeze(0))
            sr = img_util.tensor2img([out], rgb2bgr=True)
            gt_img = img_util.tensor2img([gt.unsqueeze(0)], rgb2bgr=True)
            in_img = img_util.tensor2img([inp_lq.unsqueeze(0)], rgb2bgr=True)
            per_image[name] = {
                "psnr": float(psnr_ssim.calculate_psnr(sr, gt_img, 0, test_y_channel=False)),
                "ssim": float(psnr_ssim.calculate_ssim(sr, gt_img, 0, test_y_channel=False)),
                "psnr_input": float(psnr_ssim.calculate_psnr(in_img, gt_img, 0, test_y_channel=False)),
            }
            cv2.imwrite(os.path.join(OUT, "expected_" + vname + "_" + name + ".png"), sr)
        expected["models"][vname] = {"arch": arch, "kwargs": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in kwargs.items()},
                                     "images": per_image}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
