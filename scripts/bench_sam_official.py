#!/usr/bin/python3
"""Official Segment Anything timings, the Python side of apps/sdb_sam_bench.cpp (issue #3).

Run with the Debian interpreter (python3-torch 1.13) and the official code on the path:

    # once: random vit_b weights (official build_sam_vit_b, seeded), read by both sides
    /usr/bin/python3 scripts/bench_sam_official.py --make-weights /tmp/sam_vit_b_random.pth
    /usr/bin/python3 scripts/bench_sam_official.py --checkpoint /tmp/sam_vit_b_random.pth \
        --image astronaut.png --threads 1 --pred-iou-thresh 0 --stability-score-thresh 0 --json py.json
    /usr/bin/python3 scripts/bench_sam_official.py --compare cpp.json py.json

Cases (the same as sdb-sam-bench, same option names):
  encoder  sam.image_encoder on a seeded (1, 3, 1024, 1024) input under inference_mode;
  amg      SamAutomaticMaskGenerator.generate on one RGB image (PIL), split by stage as
           MaskGenerator does: encoder = predictor.set_image, decoder = predictor.predict_torch
           (all batches), post = the rest of generate (filters, NMS, RLE, records).

Neither torchvision nor pycocotools is installed here: the stubs of scripts/make_amg_fixtures.py
are reused by importing it. Its batched_nms is an exact but pure-Python NMS, far slower than
torchvision's C++ kernel, so the time spent inside it is reported separately ("nms_stub_s") and
"post_excl_nms_stub_s" is the figure to compare with the C++ post-processing.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ.get("SAM_REF", "/tmp/ref/segment-anything"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import make_amg_fixtures  # noqa: E402,F401  (installs the torchvision / pycocotools stubs)
import segment_anything.automatic_mask_generator as amg_mod  # noqa: E402
from segment_anything import SamAutomaticMaskGenerator, build_sam_vit_b, sam_model_registry  # noqa: E402


def make_weights(path, seed):
    torch.manual_seed(seed)
    sam = build_sam_vit_b()  # checkpoint=None: the official random initialisation
    torch.save(sam.state_dict(), path)
    print(f"wrote {path} (official build_sam_vit_b, torch.manual_seed({seed}))")


AREA_RTOL = 1e-3


def compare(cpp_path, py_path):
    """Mask counts and per-record areas of the amg case in two JSON results; exit 1 on a mismatch."""
    def amg(path):
        with open(path) as f:
            return next(c for c in json.load(f)["cases"] if c["case"] == "amg")
    c, py = amg(cpp_path), amg(py_path)
    ok = c["masks"] == py["masks"]
    print(f"masks: sdb-sam-bench {c['masks']}, official {py['masks']}")
    if "areas" in c and "areas" in py and len(c["areas"]) == len(py["areas"]):
        # Logits within float rounding of the mask threshold flip single pixels between two
        # correct implementations: compare areas (same order) with a relative tolerance.
        pairs = list(zip(c["areas"], py["areas"]))
        diff = [(x, y) for x, y in pairs if x != y]
        worst = max((abs(x - y) / max(x, y, 1) for x, y in pairs), default=0.0)
        print(f"records with a different area: {len(diff)} of {len(pairs)}, "
              f"largest difference {max((abs(x - y) for x, y in diff), default=0)} px "
              f"(relative {worst:.2e}, tolerance {AREA_RTOL:.0e})")
        ok = ok and worst <= AREA_RTOL
    sys.exit(0 if ok else 1)


def median(v):
    return statistics.median(v) if v else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-weights", metavar="PATH", help="write random vit_b weights and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint")
    p.add_argument("--model-type", default="vit_b")
    p.add_argument("--image")
    p.add_argument("--what", default="all", choices=["encoder", "amg", "all"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bgr", action="store_true", help="give SAM the BGR image (SAM-Deblur's script)")
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--pred-iou-thresh", type=float, default=0.88)
    p.add_argument("--stability-score-thresh", type=float, default=0.95)
    p.add_argument("--box-nms-thresh", type=float, default=0.7)
    p.add_argument("--min-mask-region-area", type=int, default=0)
    p.add_argument("--json")
    p.add_argument("--compare", nargs=2, metavar=("CPP_JSON", "PY_JSON"),
                   help="compare the amg masks of two results (counts, areas) and exit")
    a = p.parse_args()
    if a.compare:
        compare(*a.compare)
    if a.make_weights:
        make_weights(a.make_weights, a.seed)
        return
    if not a.checkpoint:
        p.error("--checkpoint is required")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
               "checkpoint": a.checkpoint, "cases": []}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, device cpu")
    sam = sam_model_registry[a.model_type](checkpoint=a.checkpoint).eval()

    if a.what in ("encoder", "all"):
        torch.manual_seed(0)
        s = sam.image_encoder.img_size
        x = torch.randn(1, 3, s, s)
        secs, cpu = [], []
        with torch.inference_mode():
            for i in range(a.warmup + a.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                sam.image_encoder(x)
                if i >= a.warmup:
                    secs.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
        name = f"{a.model_type} image encoder {s}x{s}"
        print(f"{name:<40} {median(secs):9.3f} s wall, {median(cpu):.3f} s CPU (median of {a.repeat})")
        results["cases"].append({"case": "encoder", "name": name, "seconds": median(secs),
                                 "cpu_seconds": median(cpu), "runs": secs, "runs_cpu": cpu})

    if a.what in ("amg", "all"):
        if not a.image:
            p.error("--image is required for --what amg")
        image = np.array(Image.open(a.image).convert("RGB"))
        if a.bgr:
            image = np.ascontiguousarray(image[:, :, ::-1])
        gen = SamAutomaticMaskGenerator(
            sam, points_per_side=a.points_per_side, points_per_batch=a.points_per_batch,
            pred_iou_thresh=a.pred_iou_thresh, stability_score_thresh=a.stability_score_thresh,
            box_nms_thresh=a.box_nms_thresh, min_mask_region_area=a.min_mask_region_area)
        # Stage timers around the predictor's methods and the NMS stub.
        t = {"encoder": 0.0, "decoder": 0.0, "nms": 0.0}

        def timed(fn, key):
            def wrapper(*args, **kwargs):
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                t[key] += time.perf_counter() - t0
                return out
            return wrapper

        gen.predictor.set_image = timed(gen.predictor.set_image, "encoder")
        gen.predictor.predict_torch = timed(gen.predictor.predict_torch, "decoder")
        amg_mod.batched_nms = timed(amg_mod.batched_nms, "nms")
        runs = {"encoder": [], "decoder": [], "post": [], "nms": [], "total": [], "cpu": []}
        n_masks = 0
        for i in range(a.warmup + a.repeat):
            for k in t:
                t[k] = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            masks = gen.generate(image)
            wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
            n_masks = len(masks)
            areas = [int(m["area"]) for m in masks]  # generator order, compared with sdb-sam-bench
            if i < a.warmup:
                continue
            runs["encoder"].append(t["encoder"])
            runs["decoder"].append(t["decoder"])
            runs["post"].append(wall - t["encoder"] - t["decoder"])
            runs["nms"].append(t["nms"])
            runs["total"].append(wall)
            runs["cpu"].append(cpu_s)
        n_points = a.points_per_side ** 2
        name = (f"{a.model_type} mask generator {image.shape[1]}x{image.shape[0]} "
                f"({n_points} prompts, {n_masks} masks)")
        print(name)
        post_ex = [p_ - n for p_, n in zip(runs["post"], runs["nms"])]
        for stage, v in (("encoder", runs["encoder"]), ("decoder", runs["decoder"]),
                         ("post-processing", runs["post"]), ("  of which NMS stub", runs["nms"]),
                         ("post-processing excl. NMS stub", post_ex), ("total", runs["total"]),
                         ("total CPU time", runs["cpu"])):
            print(f"  {stage:<38} {median(v):9.3f} s (median of {a.repeat})")
        results["cases"].append({
            "case": "amg", "name": name, "image": a.image, "width": int(image.shape[1]),
            "height": int(image.shape[0]), "rgb": not a.bgr, "output_mode": "binary_mask",
            "points_per_side": a.points_per_side,
            "points_per_batch": a.points_per_batch, "pred_iou_thresh": a.pred_iou_thresh,
            "stability_score_thresh": a.stability_score_thresh, "box_nms_thresh": a.box_nms_thresh,
            "min_mask_region_area": a.min_mask_region_area, "prompts": n_points, "masks": n_masks,
            "encoder_s": median(runs["encoder"]), "decoder_s": median(runs["decoder"]),
            "post_s": median(runs["post"]), "nms_stub_s": median(runs["nms"]),
            "post_excl_nms_stub_s": median(post_ex), "total_s": median(runs["total"]),
            "cpu_total_s": median(runs["cpu"]), "areas": areas, "runs_total_s": runs["total"], "runs_cpu_total_s": runs["cpu"]})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
