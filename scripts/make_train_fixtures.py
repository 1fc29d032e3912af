#!/usr/bin/python3
"""Golden fixtures of the training slice -> tests/data/train/.

Run with the Debian interpreter (torch 1.13, numpy, cv2) and the official code:
    /usr/bin/python3 scripts/make_train_fixtures.py [/tmp/ref/sam-deblur]

The official functions and classes are executed from the reference files (their
source is extracted with `ast` and run in a small namespace), so that nothing
beyond torch / numpy / cv2 is imported (basicsr pulls in torchvision, lmdb, ...).

Writes
  loss.npz      PSNRLoss (basicsr/models/losses/losses.py) values and input
                gradients, toY off/on, two loss weights
  lr.npz        learning rates seen by optimize_parameters() for iterations
                1..N: the official optimizer + scheduler (base_model.py
                setup_schedulers) driven by BaseModel.update_learning_rate
                (with and without warm-up), several scheduler types
  optim.npz     torch.optim.AdamW / Adam steps on a tiny parameter set, with
                torch.nn.utils.clip_grad_norm_(params, 0.01) before each step
  sampler.npz   EnlargedSampler (basicsr/data/data_sampler.py) index lists
  augment.npz   official train transforms (paired_image_group_mask_dataset.py
                padding_with_masks / paired_random_crop_with_masks /
                augment_with_masks / remove_zero_slices / masks2tensor and
                paired_image_mask_dataset.py for the CAT mask channel) on
                tests/data/eval/img_a with forced crops and all 8 flip/rot flags
  meta.json     versions and FIXTURE_VERSION
"""
import ast
import json
import math
import os
import random
import sys
import warnings
from collections import Counter

import cv2
import numpy as np
import torch
import torch.nn as nn

FIXTURE_VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ref/sam-deblur"
OUT = os.path.join(REPO, "tests", "data", "train")
EVAL = os.path.join(REPO, "tests", "data", "eval")


def load_defs(relpath, names, extra=None):
    """Executes the named top-level functions / classes (or methods 'Class.meth')."""
    path = os.path.join(REF, relpath)
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    ns = {"np": np, "torch": torch, "nn": nn, "cv2": cv2, "math": math, "random": random,
          "Counter": Counter,
          "tensor_from_numpy": torch.from_numpy, "tensor_cat": torch.cat}
    if extra:
        ns.update(extra)
    out = {}
    for name in names:
        cls, _, meth = name.partition(".")
        node = next(n for n in tree.body
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == cls)
        if meth:
            node = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == meth)
        mod = ast.Module(body=[node], type_ignores=[])
        exec(compile(mod, path, "exec"), ns)
        out[name] = ns[node.name]
    return out


# ------------------------------------------------------------------------ loss
def make_loss():
    PSNRLoss = load_defs("basicsr/models/losses/losses.py", ["PSNRLoss"])["PSNRLoss"]
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 3, 8, 10, generator=g)
    target = (pred + 0.1 * torch.randn(3, 3, 8, 10, generator=g)).clamp(0, 1)
    target[2] = pred[2]  # identical image: log(1e-8) branch
    out = {"pred": pred.numpy(), "target": target.numpy()}
    for to_y in (False, True):
        for w in (1.0, 0.5):
            p = pred.clone().requires_grad_(True)
            loss = PSNRLoss(loss_weight=w, toY=to_y)(p, target)
            loss.backward()
            key = f"y{int(to_y)}_w{w}"
            out["loss_" + key] = np.array(loss.item(), np.float32)
            out["grad_" + key] = p.grad.numpy()
    np.savez(os.path.join(OUT, "loss.npz"), **out)


# ---------------------------------------------------------------------- lr
def make_lr():
    lrs = load_defs("basicsr/models/lr_scheduler.py",
                    ["MultiStepRestartLR", "CosineAnnealingRestartLR", "LinearLR", "VibrateLR",
                     "get_position_from_periods"],
                    {"_LRScheduler": torch.optim.lr_scheduler._LRScheduler})
    bm = load_defs("basicsr/models/base_model.py",
                   ["BaseModel.update_learning_rate", "BaseModel._get_init_lr",
                    "BaseModel._set_lr"])

    class Model:
        update_learning_rate = bm["BaseModel.update_learning_rate"]
        _get_init_lr = bm["BaseModel._get_init_lr"]
        _set_lr = bm["BaseModel._set_lr"]

    def run(kind, args, base_lr, warmup, n, total_iter=None):
        m = Model()
        p = nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([{"params": [p]}], lr=base_lr, weight_decay=0.0,
                                betas=(0.9, 0.9))
        m.optimizers = [opt]
        if kind == "TrueCosineAnnealingLR":
            s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, **args)
        elif kind == "MultiStepLR":
            s = lrs["MultiStepRestartLR"](opt, **args)
        elif kind == "CosineAnnealingRestartLR":
            s = lrs["CosineAnnealingRestartLR"](opt, **args)
        elif kind == "LinearLR":
            s = lrs["LinearLR"](opt, total_iter)
        elif kind == "VibrateLR":
            s = lrs["VibrateLR"](opt, total_iter)
        m.schedulers = [s]
        seq = []
        for it in range(1, n + 1):  # basicsr/train.py: current_iter = 1, 2, ...
            m.update_learning_rate(it, warmup_iter=warmup)
            seq.append(opt.param_groups[0]["lr"])
        return np.array(seq, np.float64)

    cases = {
        "cos_nowarm": ("TrueCosineAnnealingLR", {"T_max": 40, "eta_min": 1e-7}, 1e-3, -1, 90, None),
        "cos_warm": ("TrueCosineAnnealingLR", {"T_max": 40, "eta_min": 1e-7}, 1e-3, 10, 90, None),
        "cos_warm_long": ("TrueCosineAnnealingLR", {"T_max": 20, "eta_min": 0.0}, 2e-4, 25, 50, None),
        "multistep_warm": ("MultiStepLR", {"milestones": [10, 20, 20, 35], "gamma": 0.5}, 1e-3, 5, 50, None),
        "multistep_restart": ("MultiStepLR", {"milestones": [10, 30], "gamma": 0.1,
                                              "restarts": [20], "restart_weights": [0.5]}, 1e-3, -1, 50, None),
        "cosrestart": ("CosineAnnealingRestartLR", {"periods": [15, 15, 20],
                                                    "restart_weights": [1, 0.5, 0.25],
                                                    "eta_min": 1e-7}, 1e-3, 4, 50, None),
        "linear": ("LinearLR", {}, 1e-3, 3, 50, 60),
        "vibrate": ("VibrateLR", {}, 1e-3, -1, 200, 400),
    }
    out = {}
    meta = {}
    for name, (kind, args, lr, warm, n, total) in cases.items():
        out[name] = run(kind, args, lr, warm, n, total)
        meta[name] = {"type": kind, "args": args, "base_lr": lr, "warmup_iter": warm, "n": n,
                      "total_iter": total}
    np.savez(os.path.join(OUT, "lr.npz"), **out)
    return meta


# ------------------------------------------------------------------- optim
def make_optim():
    out = {}
    g = torch.Generator().manual_seed(1)
    shapes = [(4, 3), (5,), (2, 2, 3)]
    init = [torch.randn(*s, generator=g) for s in shapes]
    steps = 4
    grads = [[torch.randn(*s, generator=g) * (10.0 if k == 1 else 0.003) for s in shapes]
             for k in range(steps)]
    for i, t in enumerate(init):
        out[f"init_{i}"] = t.numpy()
    for k in range(steps):
        for i, t in enumerate(grads[k]):
            out[f"grad_{k}_{i}"] = t.numpy()
    for name, cls, kw in (("adamw", torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-3,
                                                        "betas": (0.9, 0.9)}),
                          ("adam", torch.optim.Adam, {"lr": 2e-3, "weight_decay": 0.0,
                                                      "betas": (0.9, 0.99)})):
        params = [nn.Parameter(t.clone()) for t in init]
        opt = cls([{"params": params}], **kw)
        for k in range(steps):
            opt.zero_grad()
            for p, gr in zip(params, grads[k]):
                p.grad = gr.clone()
            norm = torch.nn.utils.clip_grad_norm_(params, 0.01)
            out[f"{name}_norm_{k}"] = np.array(norm.item(), np.float32)
            for i, p in enumerate(params):
                out[f"{name}_clipped_{k}_{i}"] = p.grad.numpy().copy()
            opt.step()
            for i, p in enumerate(params):
                out[f"{name}_param_{k}_{i}"] = p.detach().numpy().copy()
    np.savez(os.path.join(OUT, "optim.npz"), **out)


# ----------------------------------------------------------------- sampler
def make_sampler():
    Sampler = load_defs("basicsr/data/data_sampler.py", ["EnlargedSampler"],
                        {"Sampler": torch.utils.data.sampler.Sampler})["EnlargedSampler"]
    out = {}
    meta = []
    for n, ratio, world in ((3, 1, 1), (3, 5, 2), (7, 3, 3), (10, 1, 4)):
        for rank in range(world):
            for epoch in (0, 1, 5):
                s = Sampler(list(range(n)), world, rank, ratio)
                s.set_epoch(epoch)
                key = f"n{n}_r{ratio}_w{world}_k{rank}_e{epoch}"
                out[key] = np.array(list(iter(s)), np.int64)
                meta.append(key)
    np.savez(os.path.join(OUT, "sampler.npz"), **out)
    return meta


# ----------------------------------------------------------------- augment
class ForcedRandom:
    """Stands in for the `random` module: randint -> given values, random() -> given values."""

    def __init__(self, ints, floats):
        self.ints, self.floats = list(ints), list(floats)

    def randint(self, a, b):
        v = self.ints.pop(0)
        assert a <= v <= b, (a, v, b)
        return v

    def random(self):
        return self.floats.pop(0)


def make_augment():
    grp = "basicsr/data/paired_image_group_mask_dataset.py"
    cat = "basicsr/data/paired_image_mask_dataset.py"
    gt = cv2.imread(os.path.join(EVAL, "target", "img_a.png")).astype(np.float32) / 255.0
    lq = cv2.imread(os.path.join(EVAL, "input", "img_a.png")).astype(np.float32) / 255.0
    pm = cv2.imread(os.path.join(EVAL, "input_mask", "img_a.png"),
                    cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    # Official grouped masks are bool; cv2.copyMakeBorder rejects bool arrays, so
    # the official padding only works on uint8 masks: use uint8 0/1 here (the
    # values after masks2tensor are the same, 1/255).
    masks = np.load(os.path.join(EVAL, "grouped_masks", "img_a.npz"))["masks"].astype(np.uint8)
    out = {}
    cases = []
    # (gt_size, top, left): crop inside; crop after padding (37x45 -> 48x48).
    for gt_size, top, left in ((16, 5, 23), (48, 0, 0), (40, 0, 5)):
        for flags in range(8):
            hflip, vflip, rot = bool(flags & 1), bool(flags & 2), bool(flags & 4)
            floats = [0.1 if hflip else 0.9, 0.1 if vflip else 0.9, 0.1 if rot else 0.9]
            f = load_defs(grp, ["padding_with_masks", "paired_random_crop_with_masks",
                                "augment_with_masks", "remove_zero_slices", "masks2tensor"],
                          {"random": ForcedRandom([top, left], floats)})
            g2, l2, m2 = f["padding_with_masks"](gt.copy(), lq.copy(), masks.copy(), gt_size)
            g2, l2, m2 = f["paired_random_crop_with_masks"](g2, l2, m2, gt_size, 1, "img_a")
            g2, l2, m2 = f["augment_with_masks"](g2, l2, m2, True, True)
            m2 = f["masks2tensor"](f["remove_zero_slices"](m2)).numpy()
            # CAT dataset: same forced draws on (gt, lq, mask png).
            c = load_defs(cat, ["padding_with_mask", "paired_random_crop_with_mask", "augment"],
                          {"random": ForcedRandom([top, left], floats)})
            cg, cl, cm = c["padding_with_mask"](gt.copy(), lq.copy(), pm.copy(), gt_size)
            cg, cl, cm = c["paired_random_crop_with_mask"](cg, cl, cm, gt_size, 1, "img_a")
            cg, cl, cm = c["augment"]([cg, cl, cm], True, True)
            key = f"s{gt_size}_f{flags}"
            # HWC BGR float32 -> CHW RGB as img2tensor(bgr2rgb=True).
            out[key + "_gt"] = np.ascontiguousarray(g2[:, :, ::-1].transpose(2, 0, 1))
            out[key + "_lq"] = np.ascontiguousarray(l2[:, :, ::-1].transpose(2, 0, 1))
            out[key + "_masks"] = np.ascontiguousarray(m2)
            out[key + "_cat_gt"] = np.ascontiguousarray(cg[:, :, ::-1].transpose(2, 0, 1))
            out[key + "_cat_mask"] = np.ascontiguousarray(cm[None])
            cases.append({"key": key, "gt_size": gt_size, "top": top, "left": left,
                          "hflip": hflip, "vflip": vflip, "rot90": rot})
    np.savez_compressed(os.path.join(OUT, "augment.npz"), **out)
    return cases


def main():
    warnings.simplefilter("ignore")  # lr_scheduler.step() before optimizer.step()
    os.makedirs(OUT, exist_ok=True)
    make_loss()
    lr_meta = make_lr()
    make_optim()
    sampler_keys = make_sampler()
    aug = make_augment()
    meta = {"fixture_version": FIXTURE_VERSION, "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "reference": REF,
            "lr_cases": lr_meta, "sampler_keys": sampler_keys, "augment_cases": aug}
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
