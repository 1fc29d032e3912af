#!/usr/bin/env python3
"""Times the official SAM-Deblur implementation on the cases of `sdb-bench`.

Run with Debian's python3-torch (the same LibTorch 1.13 as the C++ build) and the
official code on PYTHONPATH, e.g.
  PYTHONPATH=/path/to/SAM-Deblur /usr/bin/python3 scripts/bench_official.py --threads 2
Nothing of the official code is vendored here; it is imported.
"""
import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import types

import torch


def load_arch(root, name):
    # Import the arch files directly: the basicsr package pulls in torchvision etc.
    for pkg in ["basicsr", "basicsr.models", "basicsr.models.archs", "basicsr.utils"]:
        if pkg not in sys.modules:
            sys.modules[pkg] = types.ModuleType(pkg)
    import logging
    sys.modules["basicsr.utils"].get_root_logger = lambda *a, **k: logging.getLogger("basicsr")
    modname = f"basicsr.models.archs.{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, os.path.join(root, "basicsr/models/archs", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def grid_labels(h, w, m):
    rows = max(1, int(math.sqrt(m * h / w)))
    cols = (m + rows - 1) // rows
    y = (torch.arange(h) * rows // h).unsqueeze(1)
    x = (torch.arange(w) * cols // w).unsqueeze(0)
    return (y * cols + x).clamp(max=m - 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.environ.get("SAMDEBLUR_OFFICIAL", "/tmp/ref/sam-deblur"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_arch(args.root, "arch_util")
    load_arch(args.root, "local_arch")
    load_arch(args.root, "seg_local_arch")
    nafnet = load_arch(args.root, "NAFNet_arch")
    seg = load_arch(args.root, "SegNAFNet_arch")
    torch.manual_seed(0)
    results = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with torch.no_grad():
        net = seg.SegNAFNet(img_channel=3, seg_channel=2, width=8, enc_blk_nums=[1], dec_blk_nums=[1]).eval()
        for h, w, m in [(256, 256, 64), (720, 1280, 300)]:
            feats = torch.randn(2, h, w)
            labels = grid_labels(h, w, m)
            masks = torch.nn.functional.one_hot(labels, m).permute(2, 0, 1).unsqueeze(1).float() / 255.0
            ms = median_ms(lambda: net.mask_average(feats, masks, 0.0, is_training=False), max(1, args.repeat // 2))
            name = f"MAP official dense {w}x{h} M={m} C=2"
            print(f"{name:<44} {ms:>10.2f} ms")
            results.append({"case": name, "ms": ms})
        model = nafnet.NAFNet(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                              dec_blk_nums=[1, 1, 1, 1]).eval()
        for h, w in [(256, 256), (720, 1280)]:
            x = torch.rand(1, 3, h, w)
            ms = median_ms(lambda: model(x), args.repeat if h == 256 else max(1, args.repeat // 2))
            name = f"NAFNet-w32 forward {w}x{h} (official, no_grad)"
            print(f"{name:<44} {ms:>10.2f} ms")
            results.append({"case": name, "ms": ms})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
