// ResizeLongestSide (segment_anything/utils/transforms.py) and a bit-exact port of the
// arithmetic of PIL's bilinear Image.resize (Pillow src/libImaging/Resample.c:
// precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc).
#include "samdeblur/sam/transforms.h"

#include <cmath>
#include <vector>

#include "samdeblur/core/error.h"

namespace samdeblur::sam {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Resample.c PRECISION_BITS

// Taps of one resampling pass: output i reads input index[i][k] with integer weight[i][k]
// (k < ksize; unused taps have weight 0 and a valid index).
struct Taps {
  torch::Tensor index;   // (out, ksize) int64
  torch::Tensor weight;  // (out, ksize) int32, fixed point with kPrecisionBits fraction bits
};

double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

Taps precompute_taps(int64_t in_size, int64_t out_size) {
  // Coefficient tables are O(out * ksize); the pixels are processed with tensor ops.
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // bilinear filter support 1.0
  const int64_t ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  std::vector<int64_t> index(out_size * ksize, 0);
  std::vector<int32_t> weight(out_size * ksize, 0);
  std::vector<double> k(ksize);
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // C truncation
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double kx = ww != 0.0 ? k[x] / ww : k[x];
      const double fixed = kx * static_cast<double>(1 << kPrecisionBits);
      weight[xx * ksize + x] = static_cast<int32_t>(kx < 0 ? -0.5 + fixed : 0.5 + fixed);
      index[xx * ksize + x] = xmin + x;
    }
    for (int64_t x = xmax; x < ksize; ++x) index[xx * ksize + x] = xmin;  // weight 0
  }
  return {torch::tensor(index).view({out_size, ksize}),
          torch::tensor(weight).view({out_size, ksize})};
}

// One pass along `dim` (0 = rows, 1 = columns) of an (H, W, C) uint8 tensor; rounds to uint8
// as PIL: (2^(P-1) + sum pixel * w) >> P, clamped to [0, 255].
torch::Tensor resample_pass(const torch::Tensor& img, int64_t dim, int64_t out_size) {
  const Taps taps = precompute_taps(img.size(dim), out_size);
  const auto src = img.to(torch::kInt);
  std::vector<int64_t> out_shape(img.sizes().begin(), img.sizes().end());
  out_shape[dim] = out_size;
  auto acc = torch::full(out_shape, 1 << (kPrecisionBits - 1), torch::kInt);
  std::vector<int64_t> wshape = {1, 1, 1};
  wshape[dim] = out_size;
  for (int64_t k = 0; k < taps.index.size(1); ++k) {
    auto w = taps.weight.select(1, k).view(wshape);
    acc.add_(src.index_select(dim, taps.index.select(1, k).contiguous()) * w);
  }
  return torch::div(acc, 1 << kPrecisionBits, "floor").clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace

torch::Tensor pil_resize_bilinear(const torch::Tensor& hwc_u8, int64_t out_h, int64_t out_w) {
  TORCH_CHECK(hwc_u8.dim() == 3 && hwc_u8.scalar_type() == torch::kUInt8,
              "pil_resize_bilinear expects an ", "(H, W, C) uint8 tensor, got ", hwc_u8.sizes(),
              " ", hwc_u8.scalar_type());
  TORCH_CHECK(out_h > 0 && out_w > 0 && hwc_u8.size(0) > 0 && hwc_u8.size(1) > 0,
              "pil_resize_bilinear: empty size ", hwc_u8.sizes(), " -> ", out_h, "x", out_w);
  torch::Tensor img = hwc_u8.cpu();
  if (img.size(1) != out_w) img = resample_pass(img, 1, out_w);  // horizontal first, as PIL
  if (img.size(0) != out_h) img = resample_pass(img, 0, out_h);
  return img.is_same(hwc_u8) ? hwc_u8.clone() : img.contiguous();
}

std::pair<int64_t, int64_t> ResizeLongestSide::get_preprocess_shape(int64_t oldh, int64_t oldw,
                                                                    int64_t long_side_length) {
  const double scale = long_side_length * 1.0 / static_cast<double>(std::max(oldh, oldw));
  const double newh = oldh * scale, neww = oldw * scale;
  return {static_cast<int64_t>(newh + 0.5), static_cast<int64_t>(neww + 0.5)};
}

torch::Tensor ResizeLongestSide::apply_image(const torch::Tensor& hwc_u8) const {
  TORCH_CHECK(hwc_u8.dim() == 3, "apply_image expects (H, W, C), got ", hwc_u8.sizes());
  const auto [h, w] = get_preprocess_shape(hwc_u8.size(0), hwc_u8.size(1), target_length_);
  return pil_resize_bilinear(hwc_u8, h, w);
}

torch::Tensor ResizeLongestSide::apply_coords(const torch::Tensor& coords,
                                              std::pair<int64_t, int64_t> original_size) const {
  TORCH_CHECK(coords.dim() >= 1 && coords.size(-1) == 2, "apply_coords expects (..., 2), got ",
              coords.sizes());
  const auto [old_h, old_w] = original_size;
  const auto [new_h, new_w] = get_preprocess_shape(old_h, old_w, target_length_);
  auto c = coords.to(torch::kDouble).clone();
  const double sx = static_cast<double>(new_w) / old_w, sy = static_cast<double>(new_h) / old_h;
  auto scale = torch::tensor({sx, sy}, c.options());
  return c * scale;
}

torch::Tensor ResizeLongestSide::apply_boxes(const torch::Tensor& boxes,
                                             std::pair<int64_t, int64_t> original_size) const {
  return apply_coords(boxes.reshape({-1, 2, 2}), original_size).reshape({-1, 4});
}

}  // namespace samdeblur::sam
