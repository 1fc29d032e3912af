#!/usr/bin/env bash
# Masks for the CAT variant as SAM-Deblur made them for GoPro: SAM runs on
# *pre-deblurred* inputs (options/test/GoPro/MaskNAFNet.yml reads
# `input_predict_mask`). Step 1 deblurs the inputs with a baseline model through
# sdb-eval (val.save_img), step 2 runs the automatic mask generator on the result.
#
# usage: scripts/predeblur_masks.sh BASELINE_CONFIG.yml BASELINE.pth SPLIT_DIR SAM_CHECKPOINT [sdb-masks options...]
#   BASELINE_CONFIG.yml  a test config of the baseline (e.g. configs/test/GoPro/NAFNet.yml)
#   SPLIT_DIR            a folder with input/ and target/ (e.g. datasets/GoPro/train)
#   writes SPLIT_DIR/input_predict_mask/<name>.png (label maps, official encoding)
#   and keeps the deblurred images in SPLIT_DIR/predeblurred/images/.
# Example:
#   scripts/predeblur_masks.sh configs/test/GoPro/NAFNet.yml NAFNet-GoPro.pth \
#       datasets/GoPro/train sam_vit_h_4b8939.pth --device cuda
set -euo pipefail
if [ $# -lt 4 ]; then sed -n 2,16p "$0"; exit 2; fi
cfg="$1"; ckpt="$2"; split="$3"; sam="$4"; shift 4
bin="$(cd "$(dirname "$0")/.." && pwd)/build/bin"
for tool in sdb-eval sdb-masks; do
  [ -x "$bin/$tool" ] || { echo "missing $bin/$tool: build first (cmake --build build)" >&2; exit 1; }
done
"$bin/sdb-eval" --config "$cfg" --output "$split/predeblurred" \
  --set path.pretrain_network_g="$ckpt" \
  --set datasets.test.dataroot_lq="$split/input" \
  --set datasets.test.dataroot_gt="$split/target" \
  --set val.save_img=true
"$bin/sdb-masks" --checkpoint "$sam" --input "$split/predeblurred/images" \
  --output "$split/input_predict_mask" --format label-png "$@"
