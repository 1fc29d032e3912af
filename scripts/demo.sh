#!/usr/bin/env bash
# The toolkit's main job on a fresh machine: install what is missing, build,
# evaluate the four ablation variants (tiny random-weight checkpoints made with
# the official code, bundled in tests/data/eval) on the bundled benchmark, and
# print the ablation table in the paper's layout (PSNR / SSIM / MCR).
#
# With real weights and datasets, point a config at them instead, e.g.
#   build/bin/sdb-eval --config configs/test/GoPro/SegNAFNet.yml \
#       --set path.pretrain_network_g=/models/SegNAFNet-GoPro.pth
set -euo pipefail
cd "$(dirname "$0")/.."

# ==== Demo data (issue #4) =====================================================
# GoPro-like pairs made from the committed public-domain / CC0 photos
# (data/demo/photos, see data/demo/SOURCES.md): synthetic camera-shake blur and
# superpixel masks, into results/demo-data/{train,test}/{input,target,input_mask,
# grouped_masks} (+ manifest.json, written last). Generated once, deterministic
# (seed 0); delete results/demo-data to regenerate.
DEMO_DATA=results/demo-data
if [ ! -f "$DEMO_DATA/manifest.json" ]; then
  scripts/install_deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build build -j "$(nproc)" --target sdb-synth
  build/bin/sdb-synth --photos data/demo/photos --output "$DEMO_DATA" --seed 0
fi
# ==== Training on the demo data (issue #4, sdb-train) ==========================
# To be added by the trainer's author: train on $DEMO_DATA/train, evaluate on
# $DEMO_DATA/test (dataroot_lq=input, dataroot_gt=target, dataroot_mask=grouped_masks).
# ==== Evaluation of the ablation variants on the bundled benchmark =============
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)" --target sdb-eval
OUT=results/demo
variants=(NAFNet MaskNAFNet SegNAFNet-plain SegNAFNet)
labels=("w/o SAM (NAFNet)" "CAT (MaskNAFNet)" "MAP (SegNAFNet)" "MAP + mask dropout")
lines=()
for v in "${variants[@]}"; do
  # sdb-eval prints one result line on stdout: "<dataset> | N images | psnr X | ssim Y | MCR Z% | ..."
  lines+=("$(build/bin/sdb-eval --config "configs/demo/$v.yml" --output "$OUT/$v" | tail -n 1)")
done
echo
echo "Ablation on the bundled tiny benchmark (random-weight models: the numbers exercise the pipeline, they are not the paper's)"
printf '%-22s %10s %8s %8s\n' "Method" "PSNR" "SSIM" "MCR"
for i in "${!variants[@]}"; do
  echo "${lines[$i]}" | awk -v label="${labels[$i]}" -F'|' '{
    for (i = 1; i <= NF; i++) { split($i, kv, " "); if (kv[1] == "psnr") p = kv[2]; if (kv[1] == "ssim") s = kv[2]; if (kv[1] == "MCR") m = kv[2] }
    printf "%-22s %10s %8s %8s\n", label, p, s, m }'
done
echo "Per-image results: $OUT/<variant>/metrics.csv and summary.json; output images: $OUT/<variant>/images/"
