#!/usr/bin/env python3
"""Times the official SAM-Deblur implementation on the cases of `sdb-bench`.

Run with Debian's python3-torch (the same LibTorch 1.13 as the C++ build) and the
official code checked out at --root (default $SAMDEBLUR_OFFICIAL or /tmp/ref/sam-deblur), e.g.
  /usr/bin/python3 scripts/bench_official.py --root /path/to/SAM-Deblur --threads 2
  /usr/bin/python3 scripts/bench_official.py --what train --threads 2
--what train times official training iterations (optimize_parameters) of NAFNet-w32
and SegNAFNet-w32 on an in-memory batch, as `sdb-bench --what train`.
--what nafnet times the forward pass exactly as `sdb-bench --what nafnet` does: the
same sizes in the same order, one untimed run per size, `--repeat` timed runs (half
above 512x512), median and minimum, minor page faults per run; --memory-format
channels_last converts model and input (torch.channels_last), --precision bf16 runs
under torch.autocast("cpu", torch.bfloat16). scripts/bench_nafnet.sh runs both sides.
Nothing of the official code is vendored here; it is imported.
"""
import argparse
import contextlib
import importlib.util
import json
import math
import os
import resource
import statistics
import sys
import time
import types

import torch


def load_arch(root, name, folder="archs"):
    # Import the arch files directly: the basicsr package pulls in torchvision etc.
    for pkg in ["basicsr", "basicsr.models", "basicsr.models.archs", "basicsr.models.losses", "basicsr.utils"]:
        if pkg not in sys.modules:
            sys.modules[pkg] = types.ModuleType(pkg)
    import logging
    sys.modules["basicsr.utils"].get_root_logger = lambda *a, **k: logging.getLogger("basicsr")
    modname = f"basicsr.models.{folder}.{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, os.path.join(root, "basicsr/models", folder, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod


def timed_runs(fn, warmup, repeat):
    """(median ms, min ms, minor page faults per run) of `repeat` runs after `warmup`."""
    for _ in range(warmup):
        fn()
    times, faults = [], 0
    for _ in range(repeat):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return statistics.median(times), min(times), faults / max(1, repeat)


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


def load_psnr_loss(root):
    # losses.py imports only torch, numpy and basicsr.models.losses.loss_util, and
    # loss_util only torch and functools: both load as they are.
    load_arch(root, "loss_util", folder="losses")
    return load_arch(root, "losses", folder="losses").PSNRLoss


def random_partition(h, w, m):
    """A random partition of (h, w) into at most m irregular cells (Voronoi cells of
    m random seeds), labels 0..m-1; the same construction as sdb-bench."""
    sy, sx = torch.randint(h, (m,)), torch.randint(w, (m,))
    dy = torch.arange(h).view(h, 1, 1) - sy.view(1, 1, m)
    dx = torch.arange(w).view(1, w, 1) - sx.view(1, 1, m)
    return (dy * dy + dx * dx).argmin(2)


def official_masks(labels, m):
    """(M, 1, H, W) float, value 1/255, empty masks removed: what the official
    PairedImageGroupMaskDataset yields (remove_zero_slices, masks2tensor)."""
    dense = torch.nn.functional.one_hot(labels, m).permute(2, 0, 1).unsqueeze(1)
    dense = dense[dense.flatten(1).any(1)]
    return dense.float() / 255.0


def train_seconds(model, psnr_loss_cls, batch, size, num_masks, warmup, repeat, channels_last=False):
    """Median seconds of one ImageRestorationModel.optimize_parameters iteration
    (options/train/GoPro: PSNRLoss, AdamW lr 1e-3 wd 1e-3 betas (0.9, 0.9),
    use_grad_clip: clip_grad_norm_ 0.01) on an in-memory batch. channels_last:
    the model and lq in torch.channels_last (the official code's own ops; not
    something the official trainer does)."""
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optim_params = [v for v in model.parameters() if v.requires_grad]
    optimizer = torch.optim.AdamW([{"params": optim_params}], lr=1e-3, weight_decay=1e-3, betas=(0.9, 0.9))
    cri_pix = psnr_loss_cls(loss_weight=1.0, reduction="mean")
    lq, gt = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    if channels_last:
        lq = lq.contiguous(memory_format=torch.channels_last)
    seg = num_masks > 0
    masks = [official_masks(random_partition(size, size, num_masks), num_masks) for _ in range(batch)] if seg else None

    def iteration(batch_masks):
        optimizer.zero_grad()
        preds = model(lq, batch_masks) if seg else model(lq)
        l_pix = 0.0
        l_pix += cri_pix(preds, gt)
        l_total = l_pix + 0.0 * sum(p.sum() for p in model.parameters())
        l_total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        optimizer.step()
        return l_pix.item()  # reduce_loss_dict logs it

    times = []
    for i in range(warmup + repeat):
        # mask_average zeroes dropped masks in place; the loader gives fresh ones every batch
        batch_masks = [m.clone() for m in masks] if seg else None
        t0 = time.perf_counter()
        iteration(batch_masks)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.environ.get("SAMDEBLUR_OFFICIAL", "/tmp/ref/sam-deblur"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default="")
    ap.add_argument("--what", default="inference", choices=["map", "nafnet", "inference", "train", "all"],
                    help="inference = map + nafnet (default); all adds train")
    ap.add_argument("--warmup", type=int, default=2, help="train: untimed iterations first")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--masks", type=int, default=30, help="train: masks per image (SegNAFNet)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="nafnet: bf16 = CPU autocast")
    ap.add_argument("--memory-format", default="contiguous", choices=["contiguous", "channels_last"],
                    help="nafnet, train: the model and input in torch.channels_last")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 256, 720, 1280], help="nafnet: H W pairs")
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
    if args.what in ("map", "inference", "all"):
        bench_map(seg, args, results)
    if args.what in ("nafnet", "inference", "all"):
        bench_nafnet(nafnet, args, results)
    if args.what in ("train", "all"):
        psnr_loss_cls = load_psnr_loss(args.root)
        cases = [("NAFNet", lambda: nafnet.NAFNet(img_channel=3, width=32, middle_blk_num=1,
                                                  enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1]), 0),
                 ("SegNAFNet", lambda: seg.SegNAFNet(img_channel=3, seg_channel=2, width=32, middle_blk_num=1,
                                                     mask_dropout=0.5, enc_blk_nums=[1, 1, 1, 28],
                                                     dec_blk_nums=[1, 1, 1, 1]), args.masks)]
        for type_name, make, m in cases:
            cl = args.memory_format == "channels_last"
            s = train_seconds(make(), psnr_loss_cls, args.batch, args.size, m, args.warmup, args.repeat, cl)
            name = f"{type_name}-w32 train B{args.batch} {args.size}x{args.size}" + (f" M={m}" if m else "")
            name += " [fp32 channels_last]" if cl else ""
            print(f"{name:<44} {s * 1000:>10.2f} ms {1 / s:>8.3f} it/s")
            results.append({"case": name, "ms": s * 1000, "s_per_iter": s, "it_per_s": 1 / s, "batch": args.batch,
                            "size": args.size, "warmup": args.warmup, "repeat": args.repeat})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def bench_map(seg, args, results):
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


def bench_nafnet(nafnet, args, results):
    """The forward cases of `sdb-bench --what nafnet`, same order and statistics."""
    cl = args.memory_format == "channels_last"
    label = "" if (args.precision, args.memory_format) == ("fp32", "contiguous") else \
        f" [{args.precision} {args.memory_format}]"
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bf16" \
        else contextlib.nullcontext
    with torch.no_grad():
        model = nafnet.NAFNet(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28],
                              dec_blk_nums=[1, 1, 1, 1]).eval()
        if cl:
            model = model.to(memory_format=torch.channels_last)
        sizes = list(zip(args.sizes[0::2], args.sizes[1::2]))
        for h, w in sizes:
            x = torch.rand(1, 3, h, w)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)

            def run():
                with autocast():
                    return model(x)

            repeat = max(1, args.repeat // 2) if h * w > 512 * 512 else args.repeat
            ms, min_ms, faults = timed_runs(run, min(args.warmup, 1), repeat)
            name = f"NAFNet-w32 forward {w}x{h}{label} (official, no_grad)"
            print(f"{name:<60} {ms:>10.2f} ms (min {min_ms:.2f}, {faults:.0f} faults/run)")
            results.append({"case": name, "ms": ms, "min_ms": min_ms, "runs": repeat,
                            "minor_faults_per_run": faults})


if __name__ == "__main__":
    main()
