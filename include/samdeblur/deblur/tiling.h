#pragma once
// Tiled inference for images of any size in bounded memory: the image is cut
// into overlapping tiles, each tile runs through eval::infer (the per-image
// path of sdb-eval) with its masks cropped with it (the MAP unit then averages
// features over the part of each mask inside the tile, from the full-resolution
// label map), and the tile outputs are blended back with linear-ramp weights.
//
// Deviation (inherent): NAFNet's simplified channel attention pools over its
// whole input (TLC: over a local window of 1.5 x train_size), and the MAP unit
// averages over each mask's pixels; both see only the tile, so a tiled output
// differs from a whole-image one. README "Deblurring photos" has the measured
// PSNR between the two and why the defaults below were chosen.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "samdeblur/dataset/paired.h"
#include "samdeblur/models/network.h"

namespace samdeblur::deblur {

// Defaults of Deblurrer and sdb-deblur (README, "Deblurring photos").
inline constexpr int64_t kDefaultTile = 512;
inline constexpr int64_t kDefaultTileOverlap = 64;

struct TileOptions {
  int64_t tile = kDefaultTile;            // tile side in pixels; 0 = whole image
  int64_t overlap = kDefaultTileOverlap;  // at least this many pixels shared by neighbours
  // Throws ConfigError naming the option (tile < 0, tile in 1..15, overlap < 0
  // or overlap >= tile).
  void validate() const;
};

// Starts of the tiles along an axis of length n: one tile [0, n) when n <= tile;
// otherwise the fewest tiles of length `tile` whose neighbours share >= overlap
// pixels, spread evenly, the first at 0 and the last flush with n.
// align > 1 (infer_tiled: the network's padding multiple, 16 for 4 encoder levels):
// every start is a multiple of align, so each tile sees the whole image's
// down-sampling grid; the last tile is [start, n) with start the first multiple of
// align >= n - tile (shorter than `tile` when n - tile is not a multiple; the
// network pads it as it pads the whole image); unaligned when tile - overlap <= align.
std::vector<int64_t> tile_starts(int64_t n, int64_t tile, int64_t overlap, int64_t align = 1);

// Blending weights (len,) of a tile [start, start + len) of an axis of length n:
// a linear ramp (k + 0.5) / ramp over the first / last `ramp` pixels on a side
// that has a neighbour, 1 elsewhere; never 0.
torch::Tensor ramp_weights(int64_t start, int64_t len, int64_t n, int64_t ramp);

// Whether `options` cut an h x w image into more than one tile.
bool is_tiled(int64_t h, int64_t w, const TileOptions& options);

// The (3, H, W) float output on the CPU, as eval::infer returns it: the whole
// image when it fits in one tile (then exactly eval::infer), otherwise every
// tile (starts aligned to the network's padding multiple, tile_starts) through
// eval::infer (lq and masks cropped), blended by ramp_weights(..., overlap) in
// both directions and normalised by the weight sum.
torch::Tensor infer_tiled(models::DeblurNetImpl& net, const dataset::Sample& sample,
                          const TileOptions& options, const torch::Device& device);

}  // namespace samdeblur::deblur
