#!/usr/bin/env bash
# The measurements behind sdb-deblur's default tile size and overlap (README,
# "Tiles: any size in bounded memory"), from one command:
#
#   scripts/tiling_figures.sh [OUT=tiling_figures] [THREADS=1]
#
# 1. OUT/psnr.md: DeblurFigures.DISABLED_LargeImagesTiledAgainstWholeImage
#    (tests/deblur/tiling_figures_test.cpp): the demo photo chelsea upscaled
#    (bicubic) to 1536x1024 and 2048x1365, GoPro-size networks (width 32, enc
#    [1, 1, 1, 28]) with seeded random weights, NAFNet / NAFNetLocal /
#    SegNAFNetLocal (superpixel label map of the whole image, the same for every
#    tiling): PSNR of the tiled against the whole-image output and the time of
#    each configuration (in one process). By default the README's table: tiles
#    256..768 x overlap 32 / 64 / 128 for NAFNetLocal (sdb-deblur's default
#    network form) at 1536x1024, overlap 64 for NAFNet and SegNAFNetLocal, and
#    NAFNetLocal at 2048x1365; FULL=1 runs every combination. It also writes the random
#    checkpoints OUT/NAFNet.pth, OUT/SegNAFNet.pth and the photos OUT/large/*.png.
# 2. OUT/rss.md: peak resident memory and time of sdb-deblur (/usr/bin/time -v,
#    one fresh process per configuration) on the largest photo written, per
#    network (RSS_NETS, default "NAFNetLocal SegNAFNetLocal"; NAFNet is
#    NAFNetLocal's memory) and tile size (RSS_TILES, default "0 256 384 512 768",
#    overlap RSS_OVERLAP=64; 0 = whole image).
#
# PSNR and memory do not depend on the machine's load; times do (say so).
# Environment: SDB_BIN (default build/bin), SKIP_PSNR=1 (only step 2, reusing
# OUT's files), SKIP_RSS=1 (only step 1).
set -euo pipefail
OUT=${1:-tiling_figures}
THREADS=${2:-1}
BIN=${SDB_BIN:-build/bin}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# One run of the figures test: NETS SIZES TILES (comma-separated lists).
figures() {
  SAMDEBLUR_FIGURES_DIR=$OUT SAMDEBLUR_FIGURES_NETS=$1 SAMDEBLUR_FIGURES_SIZES=$2 \
    SAMDEBLUR_FIGURES_TILES=$3 OMP_NUM_THREADS=$THREADS "$BIN/sdb-tests" \
    --gtest_also_run_disabled_tests \
    --gtest_filter='DeblurFigures.DISABLED_LargeImagesTiledAgainstWholeImage' |
    tee -a "$OUT/psnr.log"
}
ALL=256/32,256/64,256/128,384/32,384/64,384/128,512/32,512/64,512/128,768/32,768/64,768/128
if [[ -z ${SKIP_PSNR:-} ]]; then
  rm -f "$OUT/psnr.log"
  if [[ -n ${FULL:-} ]]; then  # every network, size and tiling (hours on 2 cores)
    figures NAFNet,NAFNetLocal,SegNAFNetLocal 1536x1024,2048x1365 $ALL
  else  # the README's table, most telling first: the default network, then the others
    figures NAFNetLocal 1536x1024 256/64,384/64,512/64,768/64,512/32,512/128
    figures NAFNet,SegNAFNetLocal 1536x1024 256/64,384/64,512/64,768/64
    figures NAFNetLocal 1536x1024 256/32,256/128,384/32,384/128,768/32,768/128
    figures NAFNetLocal 2048x1365 256/64,384/64,512/64,768/64
  fi
  grep '^| [A-Z]' "$OUT/psnr.log" >"$OUT/psnr.md"
fi

[[ -n ${SKIP_RSS:-} ]] && exit 0
mkdir -p "$OUT/rss"
photo=$(ls -S "$OUT"/large/*.png | head -1)  # the largest
echo "| network | photo | tile / overlap | peak RSS (kB) | wall (s) | CPU (s) |" >"$OUT/rss.md"
echo "|---|---|---|---|---|---|" >>"$OUT/rss.md"
for net in ${RSS_NETS:-NAFNetLocal SegNAFNetLocal}; do
  args=(--checkpoint "$OUT/NAFNet.pth" --no-tlc)
  [[ $net == *Local ]] && args=(--checkpoint "$OUT/NAFNet.pth" --tlc)
  [[ $net == Seg* ]] && args=(--checkpoint "$OUT/SegNAFNet.pth" --tlc --masks superpixels)
  for tile in ${RSS_TILES:-0 256 384 512 768}; do
    overlap=${RSS_OVERLAP:-64}
    [[ $tile == 0 ]] && overlap=0
    dir="$OUT/rss/${net}_${tile}_${overlap}"
    rm -rf "$dir"
    /usr/bin/time -v -o "$dir.time" "$BIN/sdb-deblur" "$photo" -o "$dir" "${args[@]}" \
      --tile "$tile" --tile-overlap "$overlap" --threads "$THREADS" --mask-cache '' -q \
      >"$dir.json" 2>"$dir.log" || { echo "failed: $net $tile (see $dir.log)"; continue; }
    rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$dir.time")
    wall=$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$dir.time")
    cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {print u + s}' "$dir.time")
    row="| $net | $(basename "$photo" .png) | $tile / $overlap | $rss | $wall | $cpu |"
    echo "$row" | tee -a "$OUT/rss.md"
  done
done
