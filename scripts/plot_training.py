#!/usr/bin/env python3
"""Plot sdb-train curves from <experiment>/metrics.jsonl to a PNG.

Usage: plot_training.py experiments/NAME/metrics.jsonl [-o curves.png]

Left panel: training loss (l_pix, PSNRLoss = -PSNR + const) per logged
iteration; right panel: validation PSNR per dataset. Uses matplotlib when it is
importable; otherwise draws the same two panels with a tiny pure-Python PNG
writer (zlib only), so it runs on a bare python3. Lines repeated by a resumed
run (iterations after the checkpoint logged twice) keep the last value.
"""
import argparse
import json
import math
import struct
import sys
import zlib


def read_metrics(path):
    train, val = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            j = json.loads(line)
            if j.get("type") == "train" and isinstance(j.get("l_pix"), (int, float)):
                train[j["iter"]] = j["l_pix"]
            elif j.get("type") == "val" and isinstance(j.get("psnr"), (int, float)):
                val.setdefault(j.get("dataset", "val"), {})[j["iter"]] = j["psnr"]
    series_train = sorted(train.items())
    series_val = {k: sorted(v.items()) for k, v in val.items()}
    return series_train, series_val


def plot_matplotlib(train, val, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        ax[0].plot([t[0] for t in train], [t[1] for t in train])
    ax[0].set_title("train l_pix (PSNRLoss)")
    ax[0].set_xlabel("iteration")
    for name, s in val.items():
        ax[1].plot([t[0] for t in s], [t[1] for t in s], marker="o", label=name)
    ax[1].set_title("validation PSNR (dB)")
    ax[1].set_xlabel("iteration")
    if val:
        ax[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


# ---------------------------------------------------------------- fallback --
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for k in range(n + 1):
            x = round(x0 + (x1 - x0) * k / n)
            y = round(y0 + (y1 - y0) * k / n)
            for dx in (0, 1):
                self.set(x + dx, y, c)

    def rect(self, x0, y0, x1, y1, c):
        self.line(x0, y0, x1, y0, c)
        self.line(x1, y0, x1, y1, c)
        self.line(x1, y1, x0, y1, c)
        self.line(x0, y1, x0, y0, c)

    def png(self):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3]) for y in range(self.h))

        def chunk(tag, data):
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def draw_panel(cv, x0, y0, w, h, series_list):
    cv.rect(x0, y0, x0 + w, y0 + h, (0, 0, 0))
    pts = [p for s in series_list for p in s if math.isfinite(p[1])]
    if not pts:
        return
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymax = ymin + 1
    pad = 6
    def tx(x):
        return round(x0 + pad + (x - xmin) / (xmax - xmin) * (w - 2 * pad))
    def ty(y):
        return round(y0 + h - pad - (y - ymin) / (ymax - ymin) * (h - 2 * pad))
    for k, s in enumerate(series_list):
        c = COLORS[k % len(COLORS)]
        s = [p for p in s if math.isfinite(p[1])]
        for a, b in zip(s, s[1:]):
            cv.line(tx(a[0]), ty(a[1]), tx(b[0]), ty(b[1]), c)
        for p in s:
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    cv.set(tx(p[0]) + dx, ty(p[1]) + dy, c)


def plot_fallback(train, val, out):
    cv = Canvas(800, 320)
    draw_panel(cv, 20, 20, 360, 280, [train])
    draw_panel(cv, 420, 20, 360, 280, list(val.values()))
    with open(out, "wb") as f:
        f.write(cv.png())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", help="metrics.jsonl written by sdb-train")
    ap.add_argument("-o", "--output", default="training_curves.png")
    args = ap.parse_args()
    train, val = read_metrics(args.metrics)
    if not train and not val:
        print(f"{args.metrics}: no train or val lines", file=sys.stderr)
        return 1
    try:
        plot_matplotlib(train, val, args.output)
        how = "matplotlib"
    except ImportError:
        plot_fallback(train, val, args.output)
        how = "built-in PNG writer (matplotlib not installed)"
    print(f"wrote {args.output} ({len(train)} train points, {sum(len(v) for v in val.values())} val points; {how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
