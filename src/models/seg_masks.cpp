// SegMasks (network.h): construction from mask stacks or label maps.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "samdeblur/core/error.h"
#include "samdeblur/models/network.h"

namespace samdeblur::models {

namespace {

// True when some byte of [p, p + n) is nonzero; 8 bytes at a time.
bool any_nonzero(const uint8_t* p, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if (word != 0) return true;
  }
  for (; i < n; ++i)
    if (p[i] != 0) return true;
  return false;
}

// The label map of a partition straight from an (M, H*W) stack of bytes (nonzero = in the
// mask): labels[p] = ids[k] for the mask k covering p, -1 where none does; ids[k] < 0
// skips mask k. Returns false as soon as a pixel lies in two masks. Pixel blocks keep the
// block of labels in cache while every mask's row of it is read once: O(H*W) memory on top
// of the stack, instead of the (M, H, W) int64 products of a dense formulation (11 GB for
// 170 masks at 4K).
bool partition_labels(const uint8_t* stack, int64_t m, int64_t hw, const std::vector<int64_t>& ids,
                      int64_t* labels) {
  constexpr int64_t kBlock = 8192;
  std::fill(labels, labels + hw, int64_t{-1});
  for (int64_t b = 0; b < hw; b += kBlock) {
    const int64_t e = std::min(hw, b + kBlock);
    for (int64_t k = 0; k < m; ++k) {
      if (ids[static_cast<size_t>(k)] < 0) continue;
      const uint8_t* row = stack + k * hw;
      for (int64_t p = b; p < e;) {
        if (p + 8 <= e) {
          uint64_t word;
          std::memcpy(&word, row + p, 8);
          if (word == 0) {
            p += 8;
            continue;
          }
        }
        const int64_t stop = std::min(e, p + 8);
        for (; p < stop; ++p) {
          if (row[p] == 0) continue;
          if (labels[p] >= 0) return false;
          labels[p] = ids[static_cast<size_t>(k)];
        }
      }
    }
  }
  return true;
}

}  // namespace

SegMasks SegMasks::from_masks(const torch::Tensor& masks, double value) {
  TORCH_CHECK((masks.dim() == 4 && masks.size(1) == 1) || masks.dim() == 3,
              "SegMasks::from_masks: expected (M, 1, H, W) or (M, H, W) masks, got ",
              masks.sizes());
  const auto stack = masks.dim() == 4 ? masks.squeeze(1) : masks;  // (M, H, W)
  const int64_t h = stack.size(1), w = stack.size(2), hw = h * w;
  SegMasks out;
  out.value = value;
  // 0/1 bytes, (M, H*W) contiguous; bool and uint8 stacks (the .npz masks) are used as
  // they are, without a copy.
  torch::Tensor bytes = stack.device().is_cpu() && (stack.scalar_type() == torch::kBool ||
                                                    stack.scalar_type() == torch::kByte)
                            ? stack
                            : (stack != 0);
  bytes = bytes.contiguous().reshape({stack.size(0), hw}).to(torch::kCPU);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data_ptr());
  // Keep non-empty masks only (remove_zero_slices in the official loader): ids[k] is mask
  // k's index among them, -1 when empty.
  std::vector<int64_t> ids(static_cast<size_t>(stack.size(0)), -1);
  int64_t m = 0;
  for (int64_t k = 0; k < stack.size(0); ++k)
    if (any_nonzero(data + k * hw, hw)) ids[static_cast<size_t>(k)] = m++;
  out.num_masks = m;
  // Partition (possibly with uncovered pixels): the label map; the same numbers as the sum
  // over masks of (k + 1) * mask minus 1.
  torch::Tensor labels = torch::empty({h, w}, torch::kLong);
  if (partition_labels(data, stack.size(0), hw, ids, labels.data_ptr<int64_t>())) {
    out.labels = labels.to(masks.device());
    return out;
  }
  std::vector<int64_t> keep;
  for (int64_t k = 0; k < stack.size(0); ++k)
    if (ids[static_cast<size_t>(k)] >= 0) keep.push_back(k);
  const auto index = torch::tensor(keep, torch::kLong).to(masks.device());
  out.dense = (stack.index_select(0, index) != 0).to(torch::kFloat).unsqueeze(1);  // (M, 1, H, W)
  return out;
}

SegMasks SegMasks::from_labels(const torch::Tensor& labels, int64_t num_masks, double value) {
  TORCH_CHECK(labels.dim() == 2, "SegMasks::from_labels: expected an (H, W) label map, got ",
              labels.sizes());
  TORCH_CHECK(
      !labels.is_floating_point() && !labels.is_complex() && labels.scalar_type() != torch::kBool,
      "SegMasks::from_labels: label map must be an integer tensor, got ", labels.scalar_type());
  TORCH_CHECK(num_masks >= 0, "SegMasks::from_labels: num_masks must be >= 0, got ", num_masks);
  auto l = labels.to(torch::kLong);
  if (l.numel() > 0) {
    const int64_t lo = l.min().item<int64_t>(), hi = l.max().item<int64_t>();
    TORCH_CHECK(lo >= -1 && hi < num_masks, "SegMasks::from_labels: labels must lie in [-1, ",
                num_masks, "), got [", lo, ", ", hi, "]");
  }
  // Renumber so that only non-empty masks remain (as from_masks / the official
  // loader): mask dropout counts M over the masks actually present.
  auto seg = torch::where(l < 0, torch::full_like(l, num_masks), l).reshape({-1});
  const auto present = torch::bincount(seg, {}, num_masks + 1).slice(0, 0, num_masks) > 0;
  const auto new_ids = present.to(torch::kLong).cumsum(0) - 1;  // valid where present
  auto lut = torch::cat({new_ids, torch::full({1}, -1, new_ids.options())});
  SegMasks out;
  out.value = value;
  out.num_masks = present.sum().item<int64_t>();
  out.labels = lut.index_select(0, seg).reshape(labels.sizes());
  return out;
}

int64_t SegMasks::height() const {
  if (labels.defined()) return labels.size(0);
  TORCH_CHECK(dense.defined(), "SegMasks: empty (neither labels nor dense)");
  return dense.size(2);
}

int64_t SegMasks::width() const {
  if (labels.defined()) return labels.size(1);
  TORCH_CHECK(dense.defined(), "SegMasks: empty (neither labels nor dense)");
  return dense.size(3);
}

SegMasks SegMasks::to(const torch::Device& device) const {
  SegMasks out = *this;
  if (labels.defined()) out.labels = labels.to(device);
  if (dense.defined()) out.dense = dense.to(device);
  return out;
}

}  // namespace samdeblur::models
