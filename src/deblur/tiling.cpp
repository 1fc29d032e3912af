// Tiled inference with linear-ramp blending (deblur/tiling.h).
#include "samdeblur/deblur/tiling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "samdeblur/core/error.h"
#include "samdeblur/eval/evaluator.h"

namespace samdeblur::deblur {

void TileOptions::validate() const {
  if (tile < 0)
    throw ConfigError(fmt::format("tile: must be >= 0 (0 = whole image), got {}", tile));
  if (tile > 0 && tile < 16)
    throw ConfigError(fmt::format("tile: must be 0 (whole image) or >= 16, got {}", tile));
  if (overlap < 0) throw ConfigError(fmt::format("tile_overlap: must be >= 0, got {}", overlap));
  if (tile > 0 && overlap >= tile)
    throw ConfigError(
        fmt::format("tile_overlap: must be smaller than the tile ({}), got {}", tile, overlap));
}

namespace {

// tile_starts with align > 1: the last start is the first multiple of align >= n - tile,
// the others multiples of align spread evenly from 0, gaps of at most tile - overlap.
std::vector<int64_t> aligned_starts(int64_t n, int64_t tile, int64_t overlap, int64_t align) {
  const int64_t last = (n - tile + align - 1) / align * align;
  if (last == 0) return {0};
  const int64_t gap = tile - overlap - align;  // before rounding down to align
  const int64_t count = (last + gap - 1) / gap + 1;
  std::vector<int64_t> starts;
  for (int64_t k = 0; k + 1 < count; ++k) starts.push_back(k * last / (count - 1) / align * align);
  starts.push_back(last);
  return starts;
}

}  // namespace

std::vector<int64_t> tile_starts(int64_t n, int64_t tile, int64_t overlap, int64_t align) {
  if (tile <= 0 || n <= tile) return {0};
  if (align > 1 && tile - overlap > align) return aligned_starts(n, tile, overlap, align);
  const int64_t step = tile - overlap;
  const int64_t count = (n - overlap + step - 1) / step;  // ceil((n - overlap) / step) >= 2
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < count; ++k)
    starts.push_back(static_cast<int64_t>(std::llround(
        static_cast<double>(k) * static_cast<double>(n - tile) / static_cast<double>(count - 1))));
  return starts;
}

torch::Tensor ramp_weights(int64_t start, int64_t len, int64_t n, int64_t ramp) {
  torch::Tensor w = torch::ones({len});
  const int64_t r = std::min(ramp, len);
  if (r <= 0) return w;
  const torch::Tensor up = (torch::arange(r, torch::kFloat32) + 0.5) / static_cast<double>(r);
  if (start > 0) w.slice(0, 0, r).copy_(up);
  if (start + len < n) w.slice(0, len - r, len).mul_(up.flip(0));
  return w;
}

bool is_tiled(int64_t h, int64_t w, const TileOptions& o) {
  return o.tile > 0 && (h > o.tile || w > o.tile);
}

torch::Tensor infer_tiled(models::DeblurNetImpl& net, const dataset::Sample& sample,
                          const TileOptions& o, const torch::Device& device) {
  c10::InferenceMode guard;
  const eval::ValOptions whole;  // no grids: one forward per tile
  const int64_t h = sample.lq.size(1), w = sample.lq.size(2);
  if (!is_tiled(h, w, o)) return eval::infer(net, sample, whole, device);
  // Starts on the network's down-sampling grid (its padding multiple).
  const int64_t align = int64_t{1} << net.options().enc_blk_nums.size();
  torch::Tensor acc = torch::zeros({3, h, w});
  torch::Tensor weight_sum = torch::zeros({1, h, w});
  for (const int64_t i : tile_starts(h, o.tile, o.overlap, align)) {
    const int64_t th = std::min(o.tile, h - i);
    const torch::Tensor wy = ramp_weights(i, th, h, o.overlap);
    for (const int64_t j : tile_starts(w, o.tile, o.overlap, align)) {
      const int64_t tw = std::min(o.tile, w - j);
      dataset::Sample tile;
      tile.name = fmt::format("{} tile ({}, {})", sample.name, i, j);
      tile.lq = sample.lq.slice(1, i, i + th).slice(2, j, j + tw);
      if (sample.masks) tile.masks = eval::crop_masks(*sample.masks, i, th, j, tw);
      const torch::Tensor out = eval::infer(net, tile, whole, device);  // (3, th, tw)
      const torch::Tensor weights =
          wy.unsqueeze(1) * ramp_weights(j, tw, w, o.overlap).unsqueeze(0);  // (th, tw)
      acc.slice(1, i, i + th).slice(2, j, j + tw).add_(out * weights);
      weight_sum.slice(1, i, i + th).slice(2, j, j + tw).add_(weights);
    }
  }
  return acc.div_(weight_sum);
}

}  // namespace samdeblur::deblur
