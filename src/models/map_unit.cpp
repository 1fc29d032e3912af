#include "samdeblur/models/map_unit.h"

#include <algorithm>

namespace samdeblur::models {
namespace {

// 1 - clamp(v, 0, 1): the remaining-area weight of a pixel covered by one mask.
double covered_remaining_weight(double value) { return 1.0 - std::clamp(value, 0.0, 1.0); }

}  // namespace

torch::Tensor mask_average_labels(const torch::Tensor& features, const torch::Tensor& labels,
                                  int64_t num_masks, double value) {
  TORCH_CHECK(features.dim() == 3, "mask_average: expected (C, H, W) features, got ",
              features.sizes());
  TORCH_CHECK(
      labels.dim() == 2 && labels.size(0) == features.size(1) && labels.size(1) == features.size(2),
      "mask_average: label map ", labels.sizes(), " does not match features ", features.sizes());
  const int64_t c = features.size(0);
  const int64_t m = num_masks;
  const auto x = features.reshape({c, -1});  // (C, P)
  const int64_t p = x.size(1);
  // Segment id per pixel: mask k -> k, uncovered (-1) -> m.
  auto seg = labels.to(features.device(), torch::kLong).reshape({p});
  seg = torch::where(seg < 0, torch::full_like(seg, m), seg);

  auto sums = torch::zeros({c, m + 1}, x.options()).scatter_add(1, seg.expand({c, p}), x);
  auto counts = torch::bincount(seg, {}, m + 1).to(x.scalar_type());  // (M + 1)

  const auto mask_sums = sums.slice(1, 0, m);      // (C, M)
  const auto mask_counts = counts.slice(0, 0, m);  // (M)
  // avg_k = (v * S_k) / (v * n_k + 1e-8); on mask k the official result is avg_k * v.
  auto avg = (mask_sums * value) / (mask_counts * value + 1e-8);
  // Remaining region: weight 1 - v on covered pixels, 1 on uncovered ones.
  const double r = covered_remaining_weight(value);
  auto remaining_sum = mask_sums.sum(1) * r + sums.select(1, m);  // (C)
  auto remaining_area = mask_counts.sum() * r + counts[m];
  auto remaining_avg = (remaining_sum / (remaining_area + 1e-8)).unsqueeze(1);   // (C, 1)
  auto table = torch::cat({avg * value + remaining_avg * r, remaining_avg}, 1);  // (C, M + 1)
  return table.gather(1, seg.expand({c, p})).reshape(features.sizes());
}

torch::Tensor mask_average_dense(const torch::Tensor& features, const torch::Tensor& masks,
                                 double value) {
  TORCH_CHECK(features.dim() == 3, "mask_average: expected (C, H, W) features, got ",
              features.sizes());
  TORCH_CHECK(masks.dim() == 4 && masks.size(1) == 1 && masks.size(2) == features.size(1) &&
                  masks.size(3) == features.size(2),
              "mask_average: masks ", masks.sizes(), " do not match features ", features.sizes());
  const int64_t c = features.size(0);
  const auto x = features.reshape({c, -1});                                          // (C, P)
  const auto m = masks.reshape({masks.size(0), x.size(1)}).to(x.options()) * value;  // (M, P)
  auto areas = m.sum(1, /*keepdim=*/true);                                           // (M, 1)
  auto avg = m.matmul(x.t()) / (areas + 1e-8);                                       // (M, C)
  auto result = avg.t().matmul(m);                                                   // (C, P)
  auto remaining = 1 - m.sum(0).clamp(0, 1);                                         // (P)
  auto remaining_avg = x.matmul(remaining) / (remaining.sum() + 1e-8);               // (C)
  result = result + remaining_avg.unsqueeze(1) * remaining.unsqueeze(0);
  return result.reshape(features.sizes());
}

torch::Tensor mask_average(const torch::Tensor& features, const SegMasks& masks) {
  if (masks.labels.defined()) {
    return mask_average_labels(features, masks.labels, masks.num_masks, masks.value);
  }
  TORCH_CHECK(masks.dense.defined(), "mask_average: SegMasks holds neither labels nor dense");
  return mask_average_dense(features, masks.dense.to(features.device()), masks.value);
}

SegMasks pad_masks(const SegMasks& masks, int64_t height, int64_t width) {
  const int64_t h = masks.height(), w = masks.width();
  TORCH_CHECK(height >= h && width >= w, "pad_masks: cannot pad ", h, "x", w, " masks to ", height,
              "x", width);
  SegMasks out = masks;
  if (height == h && width == w) return out;
  if (masks.labels.defined()) {
    out.labels = torch::constant_pad_nd(masks.labels, {0, width - w, 0, height - h}, -1);
  } else {
    out.dense = torch::constant_pad_nd(masks.dense, {0, width - w, 0, height - h}, 0);
  }
  return out;
}

SegMasks drop_masks(const SegMasks& masks, double p) {
  const int64_t m = masks.num_masks;
  // Reference: drop_count = int(dropout * M); torch.randperm(M)[:drop_count].
  const auto drop_count = static_cast<int64_t>(p * static_cast<double>(m));
  const auto perm = torch::randperm(m, torch::TensorOptions().dtype(torch::kLong));
  SegMasks out = masks;
  if (drop_count <= 0) return out;
  const auto dropped = perm.slice(0, 0, drop_count);
  if (masks.labels.defined()) {
    // Lookup k -> k for kept masks, -1 for dropped ones; entry m maps "none" to -1.
    const auto& labels = masks.labels;
    auto lut = torch::arange(m + 1, labels.options().dtype(torch::kLong));
    lut.index_fill_(0, dropped.to(labels.device()), -1);
    lut.narrow(0, m, 1).fill_(-1);
    auto seg = torch::where(labels < 0, torch::full_like(labels, m), labels).to(torch::kLong);
    out.labels = lut.index_select(0, seg.reshape({-1})).reshape(labels.sizes());
  } else {
    auto keep = torch::ones({m}, masks.dense.options());
    keep.index_fill_(0, dropped.to(masks.dense.device()), 0);
    out.dense = masks.dense * keep.view({m, 1, 1, 1});
  }
  return out;
}

}  // namespace samdeblur::models
