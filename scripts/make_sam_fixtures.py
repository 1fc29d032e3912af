#!/usr/bin/env python3
"""Golden fixtures for tests/sam from the official Segment Anything code.

Run:  PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 scripts/make_sam_fixtures.py
      (Debian python3-torch 1.13, numpy, PIL 9.4; torchvision is NOT needed: the two
      functions segment_anything/utils/transforms.py imports from it are stubbed below
      exactly as torchvision implements them for PIL images.)

Writes into tests/data/sam/model/:
  keys_vit_{b,l,h}.txt  state_dict() keys and shapes of the official build_sam_vit_* models
                        (built without initialising weights); "key<TAB>d0,d1,..." per line
  tiny_sam.pth          random weights of a tiny SAM (TINY below), torch.save(state_dict) as
                        the official checkpoints are (a bare dict, no 'params' key)
  tiny_sam.npz          the same tensors, "<key>" -> array (fallback for .pth readers)
  predict.npz           image, resized image, embedding and predictor outputs (points; boxes;
                        boxes + points + mask input) of the tiny SAM
  rel_pos.npz           get_rel_pos with interpolation (sizes that differ from rel_pos)
  resize.npz            ResizeLongestSide.apply_image (PIL bilinear) on several sizes
  meta.json             versions, reference commit, tiny config, FIXTURE_VERSION
"""
import json
import os
import subprocess
import sys
import types
from functools import partial

import numpy as np
import torch
from PIL import Image

FIXTURE_VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "sam", "model")

# torchvision.transforms.functional stubs (torchvision's PIL path):
#   to_pil_image(np HWC uint8) -> Image.fromarray(..., "RGB");
#   resize(pil, [h, w]) -> pil.resize((w, h), BILINEAR)  (PIL antialiases when downscaling).
tv = types.ModuleType("torchvision")
tv_t = types.ModuleType("torchvision.transforms")
tv_f = types.ModuleType("torchvision.transforms.functional")
tv_f.to_pil_image = lambda a: Image.fromarray(np.asarray(a), mode="RGB")
tv_f.resize = lambda img, size: img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
tv.transforms, tv_t.functional = tv_t, tv_f
# automatic_mask_generator (imported by the package) needs torchvision.ops; unused here.
tv_ops = types.ModuleType("torchvision.ops")
tv_boxes = types.ModuleType("torchvision.ops.boxes")
tv_boxes.batched_nms = tv_boxes.box_area = None
tv.ops, tv_ops.boxes = tv_ops, tv_boxes
sys.modules.update({"torchvision": tv, "torchvision.transforms": tv_t,
                    "torchvision.transforms.functional": tv_f, "torchvision.ops": tv_ops,
                    "torchvision.ops.boxes": tv_boxes})

import segment_anything  # noqa: E402
from segment_anything import SamPredictor, sam_model_registry  # noqa: E402
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,  # noqa: E402
                                       TwoWayTransformer)
from segment_anything.modeling.image_encoder import get_rel_pos  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402

TINY = dict(image_size=96, patch_size=16, embed_dim=32, depth=2, num_heads=2, window_size=4,
            global_attn_indexes=[1], prompt_embed_dim=32, mask_in_chans=16, decoder_depth=2,
            decoder_num_heads=2, decoder_mlp_dim=64, num_multimask_outputs=3, iou_head_depth=3,
            iou_head_hidden_dim=32)


def ref_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(segment_anything.__file__)))


def ref_commit():
    try:
        return subprocess.check_output(["git", "-C", ref_root(), "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def write_keys(name):
    # Skip weight initialisation: only names and shapes are needed (vit_h has 636M parameters).
    saved = {}
    for cls in [torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.LayerNorm, torch.nn.Embedding]:
        saved[cls] = cls.reset_parameters
        cls.reset_parameters = lambda self: None
    try:
        sam = sam_model_registry[name]()
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn
    sd = sam.state_dict()
    with open(os.path.join(OUT, f"keys_{name}.txt"), "w") as f:
        f.write(f"# official {name} state_dict: {len(sd)} tensors; segment-anything {ref_commit()}\n")
        for k, v in sd.items():
            f.write(k + "\t" + ",".join(str(d) for d in v.shape) + "\n")
    del sam, sd


def build_tiny():
    t = TINY
    emb = t["image_size"] // t["patch_size"]
    return Sam(
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


def randomize(sam):
    # Zero-initialised tensors (rel_pos, pos_embed, biases) and unit LayerNorm weights would
    # hide indexing bugs: perturb everything.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for k, p in sam.named_parameters():
            scale = 0.2 if ("rel_pos" in k or "pos_embed" in k or "embed" in k) else 0.05
            p.add_(torch.randn(p.shape, generator=g) * scale)


def smooth_image(h, w, seed):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([127 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 5.0 - c) for c in range(3)], -1)
    img += rng.randn(h, w, 3) * 20
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save_npz(name, arrays):
    path = os.path.join(OUT, name)
    np.savez_compressed(path, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    print(f"{name}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ["vit_b", "vit_l", "vit_h"]:
        write_keys(name)

    torch.manual_seed(0)
    sam = build_tiny()
    randomize(sam)
    sd = sam.state_dict()
    torch.save(sd, os.path.join(OUT, "tiny_sam.pth"))
    save_npz("tiny_sam.npz", {k: v.numpy() for k, v in sd.items()})

    # Predictor path: 80x120 RGB image -> ResizeLongestSide(96) = 64x96 (downscaling).
    predictor = SamPredictor(sam)
    image = smooth_image(80, 120, 3)
    predictor.set_image(image)
    resized = predictor.transform.apply_image(image)
    out = {"image": image, "resized": resized, "embedding": predictor.get_image_embedding().numpy()}
    # Points in the original frame -> transformed with apply_coords (float64), as SamPredictor.predict.
    pts = np.array([[[10.0, 20.0], [100.5, 60.25]], [[60.0, 40.0], [3.0, 77.0]]])
    lbl = np.array([[1, 0], [1, -1]], dtype=np.int32)
    tpts = predictor.transform.apply_coords(pts, image.shape[:2])
    out["points"], out["labels"], out["points_t"] = pts, lbl, tpts
    coords = torch.as_tensor(tpts, dtype=torch.float)
    labels = torch.as_tensor(lbl, dtype=torch.int)
    for tag, multi in [("multi", True), ("single", False)]:
        masks, iou, low = predictor.predict_torch(coords, labels, multimask_output=multi, return_logits=True)
        out[f"{tag}_masks"], out[f"{tag}_iou"], out[f"{tag}_low_res"] = masks.numpy(), iou.numpy(), low.numpy()
    # float64 coordinates, as the automatic mask generator passes them.
    masks, iou, low = predictor.predict_torch(torch.as_tensor(tpts), labels, multimask_output=True,
                                              return_logits=True)
    out["f64_low_res"], out["f64_iou"] = low.numpy(), iou.numpy()
    # Boxes only; boxes + points + mask input (low-res logits of the multi case, first mask).
    boxes = torch.tensor([[5.0, 6.0, 60.5, 50.0], [30.0, 10.0, 90.0, 63.0]])
    out["boxes"] = boxes.numpy()
    masks, iou, low = predictor.predict_torch(None, None, boxes=boxes, multimask_output=True, return_logits=True)
    out["box_low_res"], out["box_iou"] = low.numpy(), iou.numpy()
    mask_in = torch.as_tensor(out["multi_low_res"][:, :1]).contiguous()
    out["mask_input"] = mask_in.numpy()
    masks, iou, low = predictor.predict_torch(coords, labels, boxes=boxes, mask_input=mask_in,
                                              multimask_output=False, return_logits=True)
    out["full_low_res"], out["full_iou"] = low.numpy(), iou.numpy()
    with torch.no_grad():
        out["dense_pe"] = sam.prompt_encoder.get_dense_pe().numpy()
    save_npz("predict.npz", out)

    # get_rel_pos with interpolation: rel_pos lengths that differ from 2 * max(q, k) - 1.
    g = torch.Generator().manual_seed(2)
    rp = {}
    for i, (q, k, length) in enumerate([(5, 5, 7), (3, 6, 11), (6, 3, 5), (4, 4, 7), (7, 2, 13)]):
        rel = torch.randn(length, 3, generator=g)
        rp[f"case{i}_rel_pos"] = rel.numpy()
        rp[f"case{i}_sizes"] = np.array([q, k], dtype=np.int64)
        rp[f"case{i}_out"] = get_rel_pos(q, k, rel).numpy()
    save_npz("rel_pos.npz", rp)

    # ResizeLongestSide.apply_image (PIL bilinear, antialiased when downscaling).
    rz = {}
    cases = [(37, 53, 64), (120, 90, 64), (150, 211, 100), (64, 64, 64), (30, 500, 128), (17, 9, 64),
             (101, 203, 96), (5, 300, 64)]
    for i, (h, w, target) in enumerate(cases):
        rng = np.random.RandomState(10 + i)
        img = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8) if i % 2 == 0 else smooth_image(h, w, i)
        tr = ResizeLongestSide(target)
        rz[f"case{i}_in"] = img
        rz[f"case{i}_target"] = np.array([target], dtype=np.int64)
        rz[f"case{i}_out"] = tr.apply_image(img)
        rz[f"case{i}_shape"] = np.array(tr.get_preprocess_shape(h, w, target), dtype=np.int64)
        c = np.array([[0.0, 0.0], [w - 1.0, h * 0.5], [3.25, 1.5]])
        rz[f"case{i}_coords"] = c
        rz[f"case{i}_coords_t"] = tr.apply_coords(c, (h, w))
    save_npz("resize.npz", rz)

    import PIL
    meta = {"fixture_version": FIXTURE_VERSION, "torch": torch.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "segment_anything_commit": ref_commit(), "tiny": TINY,
            "generator": "scripts/make_sam_fixtures.py"}
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
