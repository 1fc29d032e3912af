#!/usr/bin/env python3
"""Golden fixtures for tests/models from the official SAM-Deblur architectures.

Run:  PYTHONPATH=/tmp/ref/sam-deblur /usr/bin/python3 scripts/make_model_fixtures.py
      (or set SAMDEBLUR_REF to the checkout of HPLQAQ/SAM-Deblur)

Writes into tests/data/models/:
  <case>.npz      weights ("w.<state_dict key>"), inputs, masks, outputs and, for some
                  cases, gradients ("g.<key>", "g.input") of loss = sum(out * loss_weight)
  keys.json       state_dict keys + shapes and parameter counts of the width-32 GoPro
                  configurations, the TLC pool kernels the official conversion records,
                  and the versions / reference commit the fixtures come from.
The architecture files are loaded directly from their paths (the basicsr package
imports pull in cv2/torchvision); basicsr.utils is stubbed.
"""
import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "models")
FIXTURE_VERSION = 1


def find_ref():
    if os.environ.get("SAMDEBLUR_REF"):
        return os.environ["SAMDEBLUR_REF"]
    for p in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if p and os.path.isfile(os.path.join(p, "basicsr/models/archs/NAFNet_arch.py")):
            return p
    return "/tmp/ref/sam-deblur"


def load_archs(ref):
    for name in ["basicsr", "basicsr.models", "basicsr.models.archs"]:
        pkg = types.ModuleType(name)
        pkg.__path__ = []
        sys.modules[name] = pkg
    utils = types.ModuleType("basicsr.utils")
    utils.get_root_logger = lambda *a, **k: None
    sys.modules["basicsr.utils"] = utils
    mods = {}
    for short in ["arch_util", "local_arch", "seg_local_arch", "NAFNet_arch", "SegNAFNet_arch"]:
        full = "basicsr.models.archs." + short
        path = os.path.join(ref, "basicsr", "models", "archs", short + ".py")
        spec = importlib.util.spec_from_file_location(full, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        mods[short] = mod
    return mods


def randomize(net):
    """Random weights that exercise every block: non-zero beta/gamma, LN affine."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("beta", "gamma"):
                p.uniform_(-0.6, 0.6)
            elif ".norm" in name and leaf == "weight":
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif leaf == "bias":
                p.uniform_(-0.1, 0.1)
            # conv weights keep their default (kaiming-uniform) initialisation


def weights(net):
    return {"w." + k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def with_grads(net, out, inp, arrays):
    loss_weight = torch.randn(out.shape)
    (out * loss_weight).sum().backward()
    arrays["loss_weight"] = loss_weight.numpy()
    arrays["g.input"] = inp.grad.numpy().copy()
    for k, p in net.named_parameters():
        arrays["g." + k] = p.grad.numpy().copy()


def partition_masks(h, w, m, uncovered, gen):
    """Bool masks (M, 1, H, W) of a random partition into m regions (Voronoi cells of
    random seeds); with `uncovered`, a rectangle belongs to no mask."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    seeds = torch.stack([torch.randint(0, h, (m,), generator=gen),
                         torch.randint(0, w, (m,), generator=gen)], 1)
    d = (ys[None] - seeds[:, 0, None, None]) ** 2 + (xs[None] - seeds[:, 1, None, None]) ** 2
    label = d.argmin(0)
    if uncovered:
        label[h // 3: h // 3 + 5, w // 4: w // 4 + 7] = -1
    masks = torch.stack([label == k for k in range(m)]).unsqueeze(1)
    keep = masks.flatten(1).any(1)  # remove_zero_slices
    return masks[keep]


def official_masks(bool_masks):
    # masks2tensor: mask.astype(np.float32) / 255.0
    return torch.from_numpy(bool_masks.numpy().astype(np.float32) / 255.0)


def save(name, arrays):
    path = os.path.join(OUT, name + ".npz")
    np.savez_compressed(path, **arrays)
    print(f"{name}.npz: {os.path.getsize(path)} bytes")


TINY = dict(width=8, enc_blk_nums=[1, 1], middle_blk_num=1, dec_blk_nums=[1, 1])


def case_nafnet(N, mask):
    torch.manual_seed(1 + int(mask))
    net = N.NAFNet(img_channel=3, mask=mask, **TINY)
    randomize(net)
    net.eval()
    inp = torch.rand(2, 3 + int(mask), 19, 23, requires_grad=True)
    out = net(inp)
    arrays = weights(net)
    arrays.update(input=inp.detach().numpy().copy(), output=out.detach().numpy())
    with_grads(net, out, inp, arrays)
    save("nafnet_cat" if mask else "nafnet", arrays)


def case_nafnet_local(N, fast_imp):
    torch.manual_seed(3 + int(fast_imp))
    train_size = (1, 3, 16, 16)
    net = N.NAFNetLocal(img_channel=3, train_size=train_size, fast_imp=fast_imp, **TINY)
    randomize(net)
    inp = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        out = net(inp)
    arrays = weights(net)
    arrays.update(input=inp.numpy(), output=out.numpy(), train_size=np.array(train_size))
    save("nafnet_local_fast" if fast_imp else "nafnet_local", arrays)


def seg_inputs(gen, h, w, overlap_second):
    m0 = partition_masks(h, w, 5, True, gen)
    m1 = partition_masks(h, w, 3, False, gen)
    if overlap_second:  # an extra mask overlapping the others: dense path
        extra = torch.zeros(1, 1, h, w, dtype=torch.bool)
        extra[..., 2:h - 3, 4:w // 2] = True
        m1 = torch.cat([m1, extra])
    return [m0, m1]


def case_segnafnet(S, local):
    torch.manual_seed(5 + int(local))
    gen = torch.Generator().manual_seed(11 + int(local))
    if local:
        train_size = (1, 3, 16, 16)
        net = S.SegNAFNetLocal(img_channel=3, seg_channel=2, train_size=train_size, **TINY)
        h, w = 37, 45
    else:
        net = S.SegNAFNet(img_channel=3, seg_channel=2, **TINY)
        h, w = 19, 23
    randomize(net)
    net.eval()
    bool_masks = seg_inputs(gen, h, w, overlap_second=not local)
    inp = torch.rand(2, 3, h, w, requires_grad=not local)
    # The official forward zeroes dropped masks in place: always pass copies.
    out = net(inp, [official_masks(m) for m in bool_masks])
    arrays = weights(net)
    arrays.update(input=inp.detach().numpy().copy(), output=out.detach().numpy(),
                  masks0=bool_masks[0].numpy(), masks1=bool_masks[1].numpy())
    if local:
        arrays["train_size"] = np.array(train_size)
    else:
        with_grads(net, out, inp, arrays)
        # MAP output as intro sees it (channels after the image), from a forward hook.
        seen = {}
        net.intro.register_forward_hook(lambda m, i, o: seen.__setitem__("seg", i[0][:, 3:].clone()))

        def run(value, train, seed):
            net.train(train)
            torch.manual_seed(seed)
            masks = [m.float() * value if value == 1.0 else official_masks(m) for m in bool_masks]
            with torch.no_grad():
                out = net(inp.detach(), masks)
            return out.numpy(), seen["seg"].numpy()

        # Eval with the loader's value 1/255 and with the clean value 1; training mode
        # (mask dropout 0.5, torch.randperm from the global generator seeded with
        # train_seed; the C++ forward must draw the same permutations).
        arrays["output"], arrays["seg"] = run(1 / 255, False, 0)
        arrays["output_v1"], arrays["seg_v1"] = run(1.0, False, 0)
        arrays["train_seed"] = np.array(1234)
        arrays["output_train"], arrays["seg_train"] = run(1 / 255, True, 1234)
        arrays["output_train_v1"], arrays["seg_train_v1"] = run(1.0, True, 1234)
    save("segnafnet_local" if local else "segnafnet", arrays)


def key_list(net):
    return [[k, list(v.shape)] for k, v in net.state_dict().items()]


def tlc_kernels(net):
    cls = ("AvgPool2d", "SegAvgPool2d")
    return {n: [m.kernel_size[0], m.kernel_size[1], m.max_r1, m.max_r2]
            for n, m in net.named_modules() if type(m).__name__ in cls}


def key_file(N, S, ref):
    gopro = dict(width=32, enc_blk_nums=[1, 1, 1, 28], middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])
    nets = {
        "NAFNet": N.NAFNet(**gopro),
        "MaskNAFNet": N.NAFNet(mask=True, **gopro),
        "SegNAFNet": S.SegNAFNet(seg_channel=2, **gopro),
    }
    kernels = {
        "NAFNetLocal": tlc_kernels(N.NAFNetLocal(**gopro)),
        "MaskNAFNetLocal": tlc_kernels(N.NAFNetLocal(mask=True, **gopro)),
        "SegNAFNetLocal_fast_train200x168": tlc_kernels(
            S.SegNAFNetLocal(seg_channel=2, train_size=(1, 3, 200, 168), fast_imp=True, **gopro)),
    }
    try:
        commit = subprocess.check_output(["git", "-C", ref, "rev-parse", "HEAD"], text=True).strip()
    except Exception:  # noqa: BLE001 - a tarball checkout has no git metadata
        commit = "unknown"
    doc = {
        "fixture_version": FIXTURE_VERSION,
        "generator": "scripts/make_model_fixtures.py",
        "reference": {"repo": "HPLQAQ/SAM-Deblur", "commit": commit},
        "torch": torch.__version__,
        "numpy": np.__version__,
        "config": gopro,
        "param_counts": {k: sum(p.numel() for p in n.parameters()) for k, n in nets.items()},
        "keys": {k: key_list(n) for k, n in nets.items()},
        "tlc_kernels": kernels,
    }
    with open(os.path.join(OUT, "keys.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("keys.json:", os.path.getsize(os.path.join(OUT, "keys.json")), "bytes")


def main():
    ref = find_ref()
    mods = load_archs(ref)
    N, S = mods["NAFNet_arch"], mods["SegNAFNet_arch"]
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    case_nafnet(N, mask=False)
    case_nafnet(N, mask=True)
    case_nafnet_local(N, fast_imp=False)
    case_nafnet_local(N, fast_imp=True)
    case_segnafnet(S, local=False)
    case_segnafnet(S, local=True)
    key_file(N, S, ref)


if __name__ == "__main__":
    main()
