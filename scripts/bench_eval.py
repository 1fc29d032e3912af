#!/usr/bin/env python3
"""Helper of scripts/bench_eval.sh: the like-with-like whole-process benchmark of
`sdb-eval` against the official `basicsr/test.py` (issue 12).

  make-data  writes a deterministic benchmark: N image pairs of WxH (the demo photos,
             resized, with a motion blur; sharp = target, blurred = input), grouped masks
             as the official 2_masks_to_grouped_masks.py writes them ((M, 1, H, W) bool in
             an .npz, M between 140 and 180 per image: a Voronoi partition, as a label map
             of SAM masks is a partition), a checkpoint of the official SegNAFNet (or
             NAFNet) with the GoPro configuration and random weights saved as BasicSR
             does ({'params': state_dict}), and the official GoPro test YAML pointing at
             them (num_gpu 0).
  official   runs the official basicsr/test.py main() in this process, unchanged, with
             timing hooks wrapped around its dataset __getitem__, ImageRestorationModel.test
             and metric functions (nothing of the official code is modified or vendored;
             the hooks only read clocks), and writes the per-image times and metrics.
             Without a GPU, .cuda() is the identity (the official SSIM calls it
             unconditionally).
  report     reads /usr/bin/time -v outputs, our timing.json / metrics.csv and the
             official timing JSON, and writes one results JSON plus a printed table.

Run with Debian's /usr/bin/python3 (python3-torch 1.13: the same LibTorch as ours).
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# GoPro configuration of the official options/test/GoPro/{SegNAFNet,NAFNet}.yml.
GOPRO = dict(width=32, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])


def parse_size(text):
    w, h = text.lower().split("x")
    return int(w), int(h)


# ---------------------------------------------------------------- make-data
def make_pair(photo, w, h, idx):
    """(blurred input, sharp target), uint8 BGR, deterministic."""
    import cv2
    import numpy as np
    img = cv2.imread(photo, cv2.IMREAD_COLOR)
    sharp = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    length = max(3, min(w, h) // 40) | 1  # odd kernel, ~18 px at 720p
    k = np.zeros((length, length), np.float32)
    angle = math.radians(20 + 35 * idx)
    c = length // 2
    for t in np.linspace(-c, c, 4 * length):
        k[int(round(c + t * math.sin(angle))), int(round(c + t * math.cos(angle)))] = 1
    blurred = cv2.filter2D(sharp, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)
    return blurred, sharp


def voronoi_labels(w, h, m, seed):
    """(H, W) int32 label map of m Voronoi cells (every label present)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    while True:
        pts = np.stack([rng.uniform(0, h, m), rng.uniform(0, w, m)], 1).astype(np.float32)
        labels = np.empty((h, w), np.int32)
        xs = np.arange(w, dtype=np.float32)
        rows = max(1, (1 << 22) // (w * m))
        for y0 in range(0, h, rows):
            ys = np.arange(y0, min(h, y0 + rows), dtype=np.float32)
            dy = (ys[:, None, None] - pts[None, None, :, 0]) ** 2
            dx = (xs[None, :, None] - pts[None, None, :, 1]) ** 2
            labels[y0:y0 + len(ys)] = np.argmin(dy + dx, axis=2)
        if len(np.unique(labels)) == m:
            return labels
        seed += 1000
        rng = np.random.default_rng(seed)


def grouped_masks(labels):
    """The (M, 1, H, W) bool stack of 2_masks_to_grouped_masks.py: one mask per grey value."""
    import numpy as np
    values = np.unique(labels)
    out = np.zeros((len(values), 1) + labels.shape, bool)
    for k, v in enumerate(values):
        out[k, 0] = labels == v
    return out


def load_official_arch(root, name):
    sys.path.insert(0, HERE)
    from bench_official import load_arch  # imports the arch files only (no torchvision)
    for dep in ["arch_util", "local_arch", "seg_local_arch", "NAFNet_arch"]:
        load_arch(root, dep)
    return load_arch(root, name)


def save_checkpoint(root, network, path, seed):
    """Random-weight GoPro-config network of the official code, saved as BasicSR does."""
    import torch
    torch.manual_seed(seed)
    if network == "SegNAFNet":
        net = load_official_arch(root, "SegNAFNet_arch").SegNAFNet(seg_channel=2, **GOPRO)
    else:
        net = load_official_arch(root, "NAFNet_arch").NAFNet(**GOPRO)
    with torch.no_grad():  # beta / gamma start at zero: make every block count
        for name, p in net.named_parameters():
            if name.endswith(".beta") or name.endswith(".gamma"):
                p.normal_(0, 0.05)
    torch.save({"params": net.state_dict()}, path)


def write_yaml(root, network, data, ckpt, path, name):
    import yaml
    with open(os.path.join(root, "options/test/GoPro", network + ".yml")) as f:
        opt = yaml.safe_load(f)
    opt["name"] = name
    opt["num_gpu"] = 0
    ds = opt["datasets"]["test"]
    ds["dataroot_gt"] = os.path.join(data, "target")
    ds["dataroot_lq"] = os.path.join(data, "input")
    if "dataroot_mask" in ds:
        ds["dataroot_mask"] = os.path.join(data, "grouped_masks")
    opt["path"]["pretrain_network_g"] = ckpt
    with open(path, "w") as f:
        yaml.safe_dump(opt, f, sort_keys=False)


def cmd_make_data(a):
    import cv2
    import numpy as np
    w, h = parse_size(a.size)
    photos = sorted(glob.glob(os.path.join(REPO, "data/demo/photos/*.jpg")))
    if not photos:
        sys.exit("no demo photos in data/demo/photos")
    data = os.path.join(a.out, "data")
    for sub in ["input", "target"] + (["grouped_masks"] if a.network == "SegNAFNet" else []):
        os.makedirs(os.path.join(data, sub), exist_ok=True)
    counts = []
    for i in range(a.images):
        name = f"img_{i:03d}"
        lq, gt = make_pair(photos[i % len(photos)], w, h, i)
        cv2.imwrite(os.path.join(data, "input", name + ".png"), lq)
        cv2.imwrite(os.path.join(data, "target", name + ".png"), gt)
        if a.network != "SegNAFNet":
            continue
        m = [160, 175, 145, 180, 140][i % 5]  # 140-180 masks, as SAM gives at 720p
        masks = grouped_masks(voronoi_labels(w, h, m, seed=12 + i))
        np.savez_compressed(os.path.join(data, "grouped_masks", name + ".npz"), masks=masks)
        counts.append(int(masks.shape[0]))
    ckpt = os.path.join(a.out, f"{a.network}-w32-random.pth")
    save_checkpoint(a.official, a.network, ckpt, seed=12)
    write_yaml(a.official, a.network, os.path.abspath(data), os.path.abspath(ckpt),
               os.path.join(a.out, "config.yml"), f"bench-eval-{a.network}")
    json.dump({"size": [w, h], "images": a.images, "masks_per_image": counts, "network": a.network},
              open(os.path.join(a.out, "data.json"), "w"), indent=2)
    print(f"data: {a.images} x {w}x{h}, masks per image {counts}, checkpoint {ckpt}")


# ---------------------------------------------------------------- official
def cmd_official(a):
    import torch
    torch.set_num_threads(a.threads)
    if not torch.cuda.is_available():
        # The official _ssim_3d (metrics/psnr_ssim.py) moves its kernel and both images to
        # CUDA unconditionally; without a GPU .cuda() is made the identity (as
        # scripts/make_eval_fixtures.py does), so the SSIM runs in float32 on the CPU.
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
        torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    sys.path.insert(0, a.root)
    sys.argv = [os.path.join(a.root, "basicsr/test.py"), "-opt", a.opt]
    t_start = time.perf_counter()
    import basicsr.test as official_test
    import basicsr.metrics as metric_module
    from basicsr.data import paired_image_dataset, paired_image_group_mask_dataset
    from basicsr.models import image_restoration_model
    t_imported = time.perf_counter()
    events = []  # (kind, t0, t1)
    values = []  # (metric, value)

    def timed(kind, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            events.append((kind, t0, time.perf_counter()))
            return out
        return wrapper

    for mod in [paired_image_dataset, paired_image_group_mask_dataset]:
        for cls in vars(mod).values():
            if isinstance(cls, type) and "__getitem__" in vars(cls) and cls.__module__ == mod.__name__:
                cls.__getitem__ = timed("load", cls.__getitem__)
    irm = image_restoration_model.ImageRestorationModel
    irm.test = timed("infer", irm.test)
    irm._log_validation_metric_values = timed("end", irm._log_validation_metric_values)
    for metric in ["calculate_psnr", "calculate_ssim"]:
        fn = getattr(metric_module, metric)

        def recorded(*args, _fn=fn, _name=metric, **kwargs):
            v = _fn(*args, **kwargs)
            values.append((_name, float(v)))
            return v
        setattr(metric_module, metric, recorded)
    official_test.main()
    t_end = time.perf_counter()
    loads = [e for e in events if e[0] == "load"]
    infers = [e for e in events if e[0] == "infer"]
    end = [e for e in events if e[0] == "end"]
    loop_end = end[0][1] if end else t_end
    images = []
    for k, (ld, inf) in enumerate(zip(loads, infers)):
        nxt = loads[k + 1][1] if k + 1 < len(loads) else loop_end
        psnr = [v for n, v in values if n == "calculate_psnr"]
        ssim = [v for n, v in values if n == "calculate_ssim"]
        images.append({"load_seconds": ld[2] - ld[1], "infer_seconds": inf[2] - inf[1],
                       "post_seconds": nxt - inf[2], "total_seconds": nxt - ld[1],
                       "psnr": psnr[k] if k < len(psnr) else None,
                       "ssim": ssim[k] if k < len(ssim) else None})
    out = {"import_seconds": t_imported - t_start,
           "setup_seconds": (loads[0][1] if loads else t_end) - t_imported,
           "run_seconds": t_end - t_start, "threads": torch.get_num_threads(), "images": images}
    with open(a.timing, "w") as f:
        json.dump(out, f, indent=2)


# ---------------------------------------------------------------- report
def parse_time_v(path):
    """Fields of GNU time -v: wall seconds, peak RSS (kB), faults, CPU seconds."""
    out = {}
    if not os.path.exists(path):
        return out
    text = open(path).read()

    def field(label):
        m = re.search(re.escape(label) + r":\s*(.+)", text)
        return m.group(1).strip() if m else None
    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    if wall:
        secs = 0.0
        for part in wall.split(":"):
            secs = secs * 60 + float(part)
        out["wall_seconds"] = secs
    for key, label in [("user_seconds", "User time (seconds)"), ("system_seconds", "System time (seconds)")]:
        if field(label):
            out[key] = float(field(label))
    for key, label in [("max_rss_kb", "Maximum resident set size (kbytes)"),
                       ("minor_faults", "Minor (reclaiming a frame) page faults"),
                       ("major_faults", "Major (requiring I/O) page faults"),
                       ("voluntary_switches", "Voluntary context switches"),
                       ("involuntary_switches", "Involuntary context switches"),
                       ("exit_status", "Exit status")]:
        if field(label):
            out[key] = int(field(label))
    return out


def read_ours(run_dir):
    timing = json.load(open(os.path.join(run_dir, "timing.json")))
    import csv
    rows = list(csv.DictReader(open(os.path.join(run_dir, "metrics.csv"))))
    images = []
    for t, row in zip(timing["datasets"][0]["images"], rows):
        img = dict(t)
        img["psnr"], img["ssim"] = float(row["psnr"]), float(row["ssim"])
        images.append(img)
    return {"setup_seconds": timing["setup_seconds"], "threads": timing["intra_op_threads"],
            "images": images}


def cmd_report(a):
    out = json.load(open(os.path.join(a.out, "data.json")))
    out["threads"] = a.threads
    out["load_average_at_start"] = a.loadavg
    runs = {}
    for name in a.runs:
        r = {"process": parse_time_v(os.path.join(a.out, name + ".time"))}
        if name.startswith("sdb"):
            if os.path.exists(os.path.join(a.out, name, "timing.json")):
                r.update(read_ours(os.path.join(a.out, name)))
        else:
            path = os.path.join(a.out, name + ".timing.json")
            if os.path.exists(path):
                r.update(json.load(open(path)))
        runs[name] = r
    out["runs"] = runs
    # Do both sides score the same? Per image PSNR / SSIM of every run against the first.
    ref_name = next((n for n in a.runs if runs[n].get("images")), None)
    agree = {}
    for name, r in runs.items():
        if name == ref_name or not r.get("images"):
            continue
        ref = runs[ref_name]["images"]
        dp = max(abs(x["psnr"] - y["psnr"]) for x, y in zip(ref, r["images"]))
        ds = max(abs(x["ssim"] - y["ssim"]) for x, y in zip(ref, r["images"]))
        # bf16 is not expected to agree within the float32 tolerances: its deltas are
        # reported (the README states them) and not judged.
        judged = not name.endswith("bf16")
        agree[name] = {"against": ref_name, "max_abs_psnr_diff": dp, "max_abs_ssim_diff": ds,
                       "agree": (dp < a.psnr_tol and ds < a.ssim_tol) if judged else None}
    out["metrics_agreement"] = agree
    def ok(r):
        return r["process"].get("exit_status") == 0
    # Every official run against every run of ours (sdb, sdb_exact, sdb_cl, sdb_bf16).
    ratios = {}
    for ours_name, o in runs.items():
        ours = o["process"].get("wall_seconds") if ok(o) else None
        if not ours_name.startswith("sdb") or not ours:
            continue
        for name, r in runs.items():
            wall = r["process"].get("wall_seconds")
            if wall and not name.startswith("sdb") and ok(r):
                ratios[f"{name} / {ours_name}"] = wall / ours
    out["whole_process_ratios"] = ratios
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
    print_table(out)


def print_table(out):
    w, h = out["size"]
    print(f"\n{out['images']} image(s) {w}x{h}, {out['network']}-w32, masks {out['masks_per_image']}, "
          f"{out['threads']} threads, load average at start {out['load_average_at_start']}")
    head = f"{'run':<22}{'wall s':>9}{'peak RSS MB':>13}{'minor flt':>11}{'user+sys s':>12}  per image (load / network / total s)"
    print(head)
    print("-" * len(head))
    for name, r in out["runs"].items():
        p = r["process"]
        cpu = p.get("user_seconds", 0) + p.get("system_seconds", 0)
        per = "  ".join(f"#{k + 1}: {i['load_seconds']:.2f} / {i['infer_seconds']:.2f} / {i['total_seconds']:.2f}"
                        for k, i in enumerate(r.get("images", [])))
        status = "" if p.get("exit_status", 0) == 0 else f" (exit {p.get('exit_status')})"
        print(f"{name:<22}{p.get('wall_seconds', float('nan')):>9.2f}{p.get('max_rss_kb', 0) / 1024:>13.0f}"
              f"{p.get('minor_faults', 0):>11}{cpu:>12.2f}  {per}{status}")
    for name, ratio in out["whole_process_ratios"].items():
        print(f"whole process, {name}: {ratio:.2f}x")
    for name, ag in out["metrics_agreement"].items():
        verdict = "not judged (bf16)" if ag["agree"] is None else "agree" if ag["agree"] else "DIFFER"
        print(f"metrics {name} vs {ag['against']}: max |dPSNR| {ag['max_abs_psnr_diff']:.2e} dB, "
              f"max |dSSIM| {ag['max_abs_ssim_diff']:.2e}: {verdict}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("--size", default="1280x720")
    m.add_argument("--images", type=int, default=2)
    m.add_argument("--network", choices=["SegNAFNet", "NAFNet"], default="SegNAFNet")
    m.add_argument("--official", required=True, help="official SAM-Deblur checkout")
    m.add_argument("--out", required=True)
    o = sub.add_parser("official")
    o.add_argument("--root", required=True, help="official checkout (a copy: test.py writes results/ into it)")
    o.add_argument("--opt", required=True)
    o.add_argument("--timing", required=True)
    o.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("--out", required=True)
    r.add_argument("--runs", nargs="+", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--loadavg", default="")
    r.add_argument("--psnr-tol", type=float, default=0.01)
    r.add_argument("--ssim-tol", type=float, default=1e-4)
    a = p.parse_args()
    {"make-data": cmd_make_data, "official": cmd_official, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
