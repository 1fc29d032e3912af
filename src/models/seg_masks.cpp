// SegMasks (network.h): construction from mask stacks or label maps.
#include <fmt/format.h>

#include "samdeblur/core/error.h"
#include "samdeblur/models/network.h"

namespace samdeblur::models {

SegMasks SegMasks::from_masks(const torch::Tensor& masks, double value) {
  TORCH_CHECK((masks.dim() == 4 && masks.size(1) == 1) || masks.dim() == 3,
              "SegMasks::from_masks: expected (M, 1, H, W) or (M, H, W) masks, got ",
              masks.sizes());
  const auto stack = masks.dim() == 4 ? masks.squeeze(1) : masks;  // (M, H, W)
  const int64_t h = stack.size(1), w = stack.size(2);
  auto binary = stack != 0;
  // Keep non-empty masks only (remove_zero_slices in the official loader).
  const auto nonempty = binary.reshape({binary.size(0), h * w}).any(1);
  binary = binary.index({nonempty});
  const int64_t m = binary.size(0);

  SegMasks out;
  out.value = value;
  out.num_masks = m;
  const auto coverage = binary.sum(0);  // (H, W), int64
  if (m == 0 || coverage.max().item<int64_t>() <= 1) {
    // Partition (possibly with uncovered pixels): label k + 1 summed over masks, minus 1.
    const auto ids = torch::arange(1, m + 1, binary.options().dtype(torch::kLong)).view({m, 1, 1});
    out.labels = m == 0 ? torch::full({h, w}, -1, binary.options().dtype(torch::kLong))
                        : (binary.to(torch::kLong) * ids).sum(0) - 1;
  } else {
    out.dense = binary.to(torch::kFloat).unsqueeze(1);  // (M, 1, H, W), 0/1
  }
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
