#!/usr/bin/python3
"""Golden fixtures of the automatic mask generator -> tests/data/sam/amg/.

Run with the Debian interpreter and the official code on the path:
    PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 scripts/make_amg_fixtures.py

Writes
  utils.json / utils_inputs.npz  official outputs of segment_anything/utils/amg.py
                                 (point grids, crop boxes, stability scores, boxes,
                                 RLE, remove_small_regions) and of NMS (torchvision
                                 semantics, see below) on small seeded inputs
  generator.json                 SamAutomaticMaskGenerator.generate() records for
                                 several option sets, run with FakePredictor (an
                                 analytic stand-in for SAM, re-implemented op for op
                                 in tests/sam/mask_generator_test.cpp)
  mask_files.json / .npz         official draw_segmask label maps and grouped masks
                                 (SAM-Deblur data_preparation scripts 1 and 2, their
                                 functions executed from the files) for random boxes
  tiny_generator.json            (when tests/data/sam/model/tiny_sam.pth exists) the
                                 official generator with the tiny random-weight SAM
  meta.json                      versions and FIXTURE_VERSION

Neither torchvision nor pycocotools is installed here, so this script provides
  * batched_nms / nms / box_area with torchvision 0.14 semantics: stable descending
    sort of the scores, greedy suppression of IoU > threshold, IoU without +1 in
    the boxes' dtype; batched_nms takes the per-category path when boxes.numel()
    > 4000 (CPU), as torchvision does;
  * COCO compressed RLE (pycocotools rleToString / rleFrString) written from the
    algorithm of maskApi.c and checked on hand-computed examples below.
"""
import json
import os
import sys
import types

import numpy as np
import torch

FIXTURE_VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "sam", "amg")
TINY_DIR = os.path.join(REPO, "tests", "data", "sam", "model")


# ---------------------------------------------------------------- torchvision stub
def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes, scores, iou_threshold):
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    x1, y1, x2, y2 = (boxes[:, i].contiguous() for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = scores.sort(stable=True, dim=0, descending=True)[1].tolist()
    n = boxes.shape[0]
    sup = [False] * n
    keep = []
    # Scalar arithmetic in the boxes' dtype, as torchvision's C++ kernel.
    dt = {torch.float32: np.float32, torch.float64: np.float64}[boxes.dtype]
    X1, Y1, X2, Y2, A = (t.numpy().astype(dt) for t in (x1, y1, x2, y2, areas))
    zero = dt(0)
    for oi in range(n):
        i = order[oi]
        if sup[i]:
            continue
        keep.append(i)
        for oj in range(oi + 1, n):
            j = order[oj]
            if sup[j]:
                continue
            w = max(zero, dt(min(X2[i], X2[j]) - max(X1[i], X1[j])))
            h = max(zero, dt(min(Y2[i], Y2[j]) - max(Y1[i], Y1[j])))
            inter = dt(w * h)
            ovr = dt(inter / dt(dt(A[i] + A[j]) - inter))
            if float(ovr) > iou_threshold:
                sup[j] = True
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(boxes, scores, idxs, iou_threshold):
    if boxes.numel() > 4000:
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            curr = torch.where(idxs == class_id)[0]
            k = nms(boxes[curr], scores[curr], iou_threshold)
            keep_mask[curr[k]] = True
        keep = torch.where(keep_mask)[0]
        return keep[scores[keep].sort(descending=True)[1]]
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


from PIL import Image  # noqa: E402

tv = types.ModuleType("torchvision")
tv_ops = types.ModuleType("torchvision.ops")
tv_boxes = types.ModuleType("torchvision.ops.boxes")
tv_boxes.batched_nms, tv_boxes.box_area, tv_boxes.nms = batched_nms, box_area, nms
tv_t = types.ModuleType("torchvision.transforms")
tv_f = types.ModuleType("torchvision.transforms.functional")
# torchvision's PIL path: to_pil_image(HWC uint8) and resize(pil, [h, w]) = BILINEAR.
tv_f.to_pil_image = lambda a: Image.fromarray(np.asarray(a), mode="RGB")
tv_f.resize = lambda img, size: img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
tv.ops, tv_ops.boxes, tv.transforms, tv_t.functional = tv_ops, tv_boxes, tv_t, tv_f
sys.modules.update({"torchvision": tv, "torchvision.ops": tv_ops, "torchvision.ops.boxes": tv_boxes,
                    "torchvision.transforms": tv_t, "torchvision.transforms.functional": tv_f})


# ---------------------------------------------------------------- COCO RLE
def coco_string(counts):
    """pycocotools rleToString: 5-bit little-endian groups, 0x20 = more, +48; delta from i > 2."""
    out = []
    cnts = [int(c) & 0xFFFFFFFF for c in counts]  # uint32 as in pycocotools
    for i, c in enumerate(cnts):
        x = c - cnts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5  # Python's >> on ints is arithmetic, like C's on signed long
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def coco_decode(s):
    """pycocotools rleFrString."""
    cnts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x & 0xFFFFFFFF)
    return cnts


# Hand-computed with the maskApi.c algorithm (see tests/sam/amg_test.cpp CocoKnown).
COCO_KNOWN = [([0], "0"), ([1, 2], "12"), ([100], "T3"), ([5, 10, 3, 2], "5:3H"),
              ([31], "o0"), ([16], "`0"), ([15], "?"), ([3, 4, 5, 6, 7, 8], "345222")]
for _counts, _s in COCO_KNOWN:
    assert coco_string(_counts) == _s, (_counts, coco_string(_counts), _s)
    assert coco_decode(_s) == _counts, (_s, coco_decode(_s))

sys.modules["pycocotools"] = types.ModuleType("pycocotools")
_mask_utils = types.ModuleType("pycocotools.mask")
_mask_utils.frPyObjects = lambda rle, h, w: {"size": [h, w], "counts": coco_string(rle["counts"]).encode()}
sys.modules["pycocotools"].mask = _mask_utils
sys.modules["pycocotools.mask"] = _mask_utils

import segment_anything  # noqa: E402
import segment_anything.automatic_mask_generator as amg_mod  # noqa: E402
from segment_anything.utils import amg  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402


# ---------------------------------------------------------------- utilities
def utils_fixture():
    g = torch.Generator().manual_seed(0)
    rng = np.random.RandomState(0)
    inputs, res = {}, {}

    res["point_grids"] = {str(n): amg.build_point_grid(n).tolist() for n in [1, 2, 3, 5, 7, 16, 32]}
    res["layer_grids"] = [
        {"n": n, "layers": l, "scale": s,
         "sizes": [len(x) for x in amg.build_all_layer_point_grids(n, l, s)]}
        for n, l, s in [(32, 2, 2), (10, 2, 3), (7, 2, 1), (5, 2, 2)]]

    crops = []
    for h, w in [(96, 128), (480, 640), (1080, 1920), (777, 333), (1500, 1500), (513, 1025), (7, 9)]:
        for layers in [0, 1, 2, 3]:
            for ratio in [512 / 1500, 0.25, 0.0]:
                boxes, idx = amg.generate_crop_boxes((h, w), layers, ratio)
                crops.append({"h": h, "w": w, "layers": layers, "ratio": ratio, "boxes": boxes,
                              "layer_idxs": idx})
    res["crop_boxes"] = crops

    logits = (torch.randn(3, 2, 17, 23, generator=g) * 3).float()
    inputs["stability_logits"] = logits.numpy()
    res["stability"] = [{"thr": t, "off": o,
                         "scores": amg.calculate_stability_score(logits, t, o).flatten().tolist()}
                        for t, o in [(0.0, 1.0), (0.5, 0.25), (-1.0, 2.0)]]

    masks = torch.rand(6, 9, 11, generator=g) > 0.6
    masks[1] = False
    masks[2] = True
    masks[3] = False
    masks[3, 4:7, 2:5] = True
    masks[4, 0, 0] = True
    inputs["box_masks"] = masks.numpy()
    res["mask_boxes"] = amg.batched_mask_to_box(masks).tolist()

    rle_masks = torch.rand(7, 5, 8, generator=g) > 0.5
    rle_masks[0] = False
    rle_masks[1] = True
    rle_masks[2, 0, 0] = True
    rle_masks[3, 0, 0] = False
    inputs["rle_masks"] = rle_masks.numpy()
    rles = amg.mask_to_rle_pytorch(rle_masks)
    for r, m in zip(rles, rle_masks):
        assert (amg.rle_to_mask(r) == m.numpy()).all()
    res["rles"] = [{"size": r["size"], "counts": r["counts"], "area": amg.area_from_rle(r),
                    "coco": amg.coco_encode_rle(r)["counts"]} for r in rles]
    extra = [[0], [3, 1], [1000000, 2, 70000, 1, 5], [40, 33, 7, 900, 2, 1, 16, 31, 32, 64, 1025]]
    res["coco_extra"] = [{"counts": c, "coco": coco_string(c)} for c in extra]
    res["coco_known"] = [{"counts": c, "coco": s} for c, s in COCO_KNOWN]

    # remove_small_regions: islands and holes of several sizes on a 12 x 14 mask.
    m = np.zeros((12, 14), bool)
    m[1:9, 1:9] = True
    m[3, 3] = False                # 1-pixel hole
    m[5:7, 5:7] = False            # 4-pixel hole
    m[10, 12] = True               # 1-pixel island
    m[0:3, 11:13] = True           # 6-pixel island
    m[7:9, 9:11] = True            # touches the main region diagonally? (8-connectivity test)
    m[11, 0] = True
    m[10, 1] = True                # diagonal pair: one 8-connected island of 2
    only_small = np.zeros((6, 7), bool)
    only_small[0, 0] = only_small[3:5, 3:5] = only_small[5, 6] = True
    inputs["region_mask"], inputs["region_small"] = m, only_small
    regions = []
    for name, mm in [("region_mask", m), ("region_small", only_small)]:
        for thr in [0, 2, 3, 5, 10, 100]:
            for mode in ["holes", "islands"]:
                out, changed = amg.remove_small_regions(mm, thr, mode)
                regions.append({"input": name, "thr": thr, "mode": mode, "changed": bool(changed),
                                "mask": out.astype(np.uint8).tolist()})
    res["regions"] = regions

    # NMS: integer-valued boxes with duplicates and tied scores.
    def boxes_of(n):
        xy = rng.randint(0, 40, size=(n, 2))
        wh = rng.randint(1, 25, size=(n, 2))
        b = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        b[n // 3] = b[0]
        return b
    nms_cases = []
    for name, n, levels in [("nms_small", 60, 7), ("nms_large", 1100, 5)]:
        b = boxes_of(n)
        s = (rng.randint(0, levels, size=n) / levels).astype(np.float32)
        c = rng.randint(0, 3, size=n).astype(np.int64)
        inputs[name + "_boxes"], inputs[name + "_scores"], inputs[name + "_idxs"] = b, s, c
        bt, st, ct = torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c)
        for thr in [0.0, 0.3, 0.7]:
            nms_cases.append({"input": name, "thr": thr, "categories": True,
                              "keep": batched_nms(bt, st, ct, thr).tolist()})
            nms_cases.append({"input": name, "thr": thr, "categories": False,
                              "keep": batched_nms(bt, st, torch.zeros_like(ct), thr).tolist()})
    res["nms"] = nms_cases

    near = torch.tensor([[0, 0, 10, 10], [5, 30, 60, 70], [15, 15, 80, 90], [22, 1, 30, 8],
                         [0, 0, 99, 99], [40, 40, 41, 41]], dtype=torch.int64)
    inputs["near_boxes"] = near.numpy()
    near_cases = []
    for crop in [[0, 0, 100, 100], [50, 30, 150, 130], [0, 40, 100, 140], [20, 20, 70, 90]]:
        orig = [0, 0, 150, 140]
        near_cases.append({"crop": crop, "orig": orig,
                           "near": amg.is_box_near_crop_edge(near, crop, orig).tolist()})
    res["near_edge"] = near_cases
    res["uncrop_boxes"] = amg.uncrop_boxes_xyxy(near, [7, 11, 50, 60]).tolist()
    res["uncrop_masks"] = amg.uncrop_masks(masks[:2, :4, :5], [3, 2, 8, 6], 9, 12).int().tolist()
    return inputs, res


# ---------------------------------------------------------------- generator with FakePredictor
SIZES = [40.0, 90.0, 160.0]   # half-sizes of the three square masks, model-input pixels
SLOPES = [0.5, 0.05, 1.0]     # logit per pixel


class FakePredictor:
    """Stand-in for SamPredictor: analytic logits of the prompt and the image.

    Mask c of point (px, py) (model-input frame, float64): with pixel centres
    gx = (x + 0.5) * nw / w, gy = (y + 0.5) * nh / h and d = max(|gx-px|, |gy-py|),
      logit = SLOPES[c] * (SIZES[c] - d) + (image[y, x, 0] / 255 - 0.5) * 2
      c == 1: -5 where max(|gx-px-20|, |gy-py-20|) < 6     (a hole)
      c == 2: +5 where max(|gx-px-400|, |gy-py|) < 8       (a far island)
    iou[c] = 0.7 + 0.1 c + 0.1 frac(px * 0.013 + py * 0.007), float32.
    """

    def __init__(self, target=1024):
        self.transform = ResizeLongestSide(target)
        self.target = target
        self.device = torch.device("cpu")
        self.model = types.SimpleNamespace(mask_threshold=0.0)
        self.calls = []

    def set_image(self, image, image_format="RGB"):
        self.img = torch.from_numpy(np.ascontiguousarray(image[:, :, 0])).to(torch.float64)
        self.h, self.w = image.shape[:2]
        self.nh, self.nw = ResizeLongestSide.get_preprocess_shape(self.h, self.w, self.target)
        self.calls.append([int(self.h), int(self.w)])

    def reset_image(self):
        pass

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None,
                      multimask_output=True, return_logits=False):
        assert point_coords.dtype == torch.float64 and multimask_output and return_logits
        b = point_coords.shape[0]
        px = point_coords[:, 0, 0].reshape(b, 1, 1)
        py = point_coords[:, 0, 1].reshape(b, 1, 1)
        gx = ((torch.arange(self.w, dtype=torch.float64) + 0.5) * (self.nw / self.w)).reshape(1, 1, -1)
        gy = ((torch.arange(self.h, dtype=torch.float64) + 0.5) * (self.nh / self.h)).reshape(1, -1, 1)
        d = torch.maximum((gx - px).abs(), (gy - py).abs())
        img = (self.img / 255.0 - 0.5) * 2.0
        out = []
        for c in range(3):
            logit = (SIZES[c] - d) * SLOPES[c] + img
            if c == 1:
                hole = torch.maximum((gx - px - 20.0).abs(), (gy - py - 20.0).abs()) < 6.0
                logit = torch.where(hole, torch.full_like(logit, -5.0), logit)
            if c == 2:
                isl = torch.maximum((gx - px - 400.0).abs(), (gy - py).abs()) < 8.0
                logit = torch.where(isl, torch.full_like(logit, 5.0), logit)
            out.append(logit)
        masks = torch.stack(out, 1).float()
        t = px.reshape(b, 1) * 0.013 + py.reshape(b, 1) * 0.007
        frac = t - t.floor()
        iou = (torch.tensor([[0.7, 0.8, 0.9]], dtype=torch.float64) + frac * 0.1).float()
        return masks, iou, None


def test_image(h, w):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 3 + y * 5 + c * 70) % 256).astype(np.uint8)


GEN_CASES = [
    ("base", 96, 128, dict(points_per_side=8, points_per_batch=20, pred_iou_thresh=0.75,
                           stability_score_thresh=0.6, output_mode="uncompressed_rle")),
    ("crops", 96, 128, dict(points_per_side=8, points_per_batch=64, pred_iou_thresh=0.75,
                            stability_score_thresh=0.6, crop_n_layers=1,
                            crop_n_points_downscale_factor=2, output_mode="uncompressed_rle")),
    ("crops2", 90, 70, dict(points_per_side=6, points_per_batch=50, pred_iou_thresh=0.8,
                            stability_score_thresh=0.5, crop_n_layers=2, crop_overlap_ratio=0.3,
                            crop_nms_thresh=0.5, output_mode="uncompressed_rle")),
    ("small_regions", 96, 128, dict(points_per_side=8, points_per_batch=64, pred_iou_thresh=0.75,
                                    stability_score_thresh=0.6, min_mask_region_area=12,
                                    output_mode="uncompressed_rle")),
    ("grid_no_filters", 64, 80, dict(points_per_side=None, point_grids=None, points_per_batch=7,
                                     pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                     box_nms_thresh=0.5, output_mode="coco_rle")),
    ("defaults", 96, 128, dict(output_mode="coco_rle")),
]


def generator_fixture():
    rng = np.random.RandomState(5)
    cases = []
    for name, h, w, opts in GEN_CASES:
        opts = dict(opts)
        if "point_grids" in opts:
            opts["point_grids"] = [rng.rand(23, 2)]
        fake = FakePredictor()
        amg_mod.SamPredictor = lambda model: fake
        gen = amg_mod.SamAutomaticMaskGenerator(None, **opts)
        records = gen.generate(test_image(h, w))
        for r in records:
            seg = r["segmentation"]
            r["segmentation"] = {"size": [int(v) for v in seg["size"]], "counts": seg["counts"]}
            r["bbox"] = [int(v) for v in r["bbox"]]
            r["crop_box"] = [int(v) for v in r["crop_box"]]
            r["area"] = int(r["area"])
        o = dict(opts)
        if "point_grids" in o:
            o["point_grids"] = [g.tolist() for g in o["point_grids"]]
        cases.append({"name": name, "h": h, "w": w, "options": o, "set_image_calls": fake.calls,
                      "records": records})
        print(f"generator case {name}: {len(records)} masks")
    return cases


def tiny_generator_fixture():
    pth = os.path.join(TINY_DIR, "tiny_sam.pth")
    meta_path = os.path.join(TINY_DIR, "meta.json")
    if not (os.path.exists(pth) and os.path.exists(meta_path)):
        print("no tiny SAM fixture: skipping tiny_generator.json")
        return None
    from functools import partial
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    with open(meta_path) as f:
        t = json.load(f)["tiny"]
    emb = t["image_size"] // t["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=t["depth"], embed_dim=t["embed_dim"], img_size=t["image_size"], mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=t["num_heads"],
            patch_size=t["patch_size"], qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=t["global_attn_indexes"], window_size=t["window_size"],
            out_chans=t["prompt_embed_dim"]),
        prompt_encoder=PromptEncoder(
            embed_dim=t["prompt_embed_dim"], image_embedding_size=(emb, emb),
            input_image_size=(t["image_size"], t["image_size"]), mask_in_chans=t["mask_in_chans"]),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=t["num_multimask_outputs"],
            transformer=TwoWayTransformer(depth=t["decoder_depth"], embedding_dim=t["prompt_embed_dim"],
                                          mlp_dim=t["decoder_mlp_dim"], num_heads=t["decoder_num_heads"]),
            transformer_dim=t["prompt_embed_dim"], iou_head_depth=t["iou_head_depth"],
            iou_head_hidden_dim=t["iou_head_hidden_dim"]),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()
    sam.load_state_dict(torch.load(pth, map_location="cpu"))
    amg_mod.SamPredictor = segment_anything.SamPredictor
    cases = []
    for name, h, w, opts in [
            ("tiny", 60, 80, dict(points_per_side=6, points_per_batch=16, pred_iou_thresh=0.0,
                                  stability_score_thresh=0.0, stability_score_offset=0.5,
                                  box_nms_thresh=1.0, output_mode="uncompressed_rle")),
            ("tiny_crops", 60, 80, dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                        crop_n_layers=1, min_mask_region_area=6, box_nms_thresh=0.95,
                                        crop_nms_thresh=0.95,
                                        output_mode="uncompressed_rle"))]:
        gen = amg_mod.SamAutomaticMaskGenerator(sam, **opts)
        img = test_image(h, w)
        records = gen.generate(img)
        for r in records:
            r["bbox"] = [int(v) for v in r["bbox"]]
            r["crop_box"] = [int(v) for v in r["crop_box"]]
            r["area"] = int(r["area"])
        cases.append({"name": name, "h": h, "w": w, "options": opts, "records": records})
        print(f"tiny generator case {name}: {len(records)} masks")
    return cases


# ---------------------------------------------------------------- SAM-Deblur mask files
SAM_DEBLUR = os.environ.get("SAM_DEBLUR_REF", "/tmp/ref/sam-deblur")


def official_functions(path, names):
    """Executes only the named top-level functions of an official script (the scripts
    load checkpoints and LMDBs at import time, so they cannot be imported)."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert len(body) == len(names), f"{path}: functions {names} not found"
    scope = {"np": np, "torch": torch}
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), scope)
    return [scope[n] for n in names]


def mask_files_fixture():
    """draw_segmask (1_create_masks_with_sam.py) and grayscale_to_masks
    (2_masks_to_grouped_masks.py, after PIL convert('L') + ToTensor) on random boxes."""
    dp = os.path.join(SAM_DEBLUR, "scripts", "data_preparation")
    (draw_segmask,) = official_functions(os.path.join(dp, "1_create_masks_with_sam.py"), ["draw_segmask"])
    (grayscale_to_masks,) = official_functions(os.path.join(dp, "2_masks_to_grouped_masks.py"),
                                               ["grayscale_to_masks"])
    rng = np.random.RandomState(11)
    cases, arrays = [], {}
    for name, n, h, w in [("few", 5, 12, 16), ("many", 300, 20, 24), ("wrap", 300, 18, 20)]:
        rects = []
        masks = []
        pixels = rng.permutation(h * w)
        for k in range(n):
            if name == "wrap":  # distinct pixels (plus one overlap): every value of the code
                x0, y0 = int(pixels[k] % w), int(pixels[k] // w)
                x1, y1 = x0 + 1 + (k == 200), y0 + 1
            else:
                x0, y0 = rng.randint(0, w - 1), rng.randint(0, h - 1)
                x1, y1 = rng.randint(x0 + 1, w + 1), rng.randint(y0 + 1, h + 1)
            m = np.zeros((h, w), bool)
            m[y0:y1, x0:x1] = True
            rects.append([int(x0), int(y0), int(x1), int(y1)])
            masks.append({"segmentation": m})
        segmask = draw_segmask(masks)
        pil = Image.fromarray(segmask).convert("L")
        # torchvision ToTensor of an 'L' image: (1, H, W) float32 / 255.
        gray = torch.from_numpy(np.array(pil)).view(1, h, w).float().div(255)
        grouped = grayscale_to_masks(gray)
        arrays[name + "_label_map"] = segmask
        arrays[name + "_grouped"] = grouped.numpy()
        cases.append({"name": name, "h": h, "w": w, "rects": rects})
        print(f"mask files case {name}: {n} masks -> {grouped.shape[0]} groups")
    return cases, arrays


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    inputs, res = utils_fixture()
    np.savez(os.path.join(OUT, "utils_inputs.npz"), **inputs)
    with open(os.path.join(OUT, "utils.json"), "w") as f:
        json.dump(res, f)
    with open(os.path.join(OUT, "generator.json"), "w") as f:
        json.dump(generator_fixture(), f)
    mf_cases, mf_arrays = mask_files_fixture()
    np.savez_compressed(os.path.join(OUT, "mask_files.npz"), **mf_arrays)
    with open(os.path.join(OUT, "mask_files.json"), "w") as f:
        json.dump(mf_cases, f)
    tiny = tiny_generator_fixture()
    if tiny is not None:
        with open(os.path.join(OUT, "tiny_generator.json"), "w") as f:
            json.dump(tiny, f)
    import subprocess
    try:
        commit = subprocess.check_output(["git", "-C", os.path.dirname(os.path.dirname(
            os.path.abspath(segment_anything.__file__))), "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        commit = "unknown"
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump({"fixture_version": FIXTURE_VERSION, "torch": torch.__version__, "numpy": np.__version__,
                   "opencv": __import__("cv2").__version__, "segment_anything_commit": commit,
                   "tiny_generator": tiny is not None, "generator": "scripts/make_amg_fixtures.py"},
                  f, indent=1)


if __name__ == "__main__":
    main()
