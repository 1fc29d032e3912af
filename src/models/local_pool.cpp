#include "samdeblur/models/local_pool.h"

#include <algorithm>

namespace samdeblur::models {
namespace {
namespace F = torch::nn::functional;

// local_arch.py AvgPool2d.rs: candidate strides of the fast implementation.
constexpr int64_t kStrides[] = {5, 4, 3, 2, 1};

int64_t first_dividing_stride(int64_t size) {
  for (int64_t r : kStrides) {
    if (size % r == 0) return r;
  }
  return 1;
}

// Window means of the fast (non-equivalent) implementation: the input is sampled
// every (r1, r2) pixels, window sums come from an un-padded 2-D cumsum (so each
// window excludes its first row/column, as in the official code), and the result is
// upsampled back by nearest interpolation.
torch::Tensor fast_local_mean(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t r1 = std::min(o.max_r[0], first_dividing_stride(h));
  const int64_t r2 = std::min(o.max_r[1], first_dividing_stride(w));
  auto s = x.slice(2, 0, h, r1).slice(3, 0, w, r2).cumsum(-1).cumsum(-2);
  const int64_t sh = s.size(2), sw = s.size(3);
  const int64_t k1 = std::min(sh - 1, o.kernel_size[0] / r1);
  const int64_t k2 = std::min(sw - 1, o.kernel_size[1] / r2);
  TORCH_CHECK(k1 > 0 && k2 > 0, "LocalAvgPool2d(fast_imp): empty window (k1=", k1, ", k2=", k2,
              ") for input ", x.sizes(), " and kernel (", o.kernel_size[0], ", ", o.kernel_size[1],
              ")");
  auto out =
      (s.slice(2, 0, sh - k1).slice(3, 0, sw - k2) - s.slice(2, 0, sh - k1).slice(3, k2, sw) -
       s.slice(2, k1, sh).slice(3, 0, sw - k2) + s.slice(2, k1, sh).slice(3, k2, sw)) /
      static_cast<double>(k1 * k2);
  return F::interpolate(
      out, F::InterpolateFuncOptions()
               .scale_factor(std::vector<double>{static_cast<double>(r1), static_cast<double>(r2)})
               .mode(torch::kNearest));
}

// Exact local means over min(kernel, size) windows, stride 1, no padding.
torch::Tensor exact_local_mean(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  const int64_t h = x.size(2), w = x.size(3);
  auto s = x.cumsum(-1).cumsum(-2);
  s = torch::constant_pad_nd(s, {1, 0, 1, 0}, 0);  // zero row/column in front
  const int64_t k1 = std::min(h, o.kernel_size[0]);
  const int64_t k2 = std::min(w, o.kernel_size[1]);
  const int64_t sh = h + 1, sw = w + 1;
  auto s1 = s.slice(2, 0, sh - k1).slice(3, 0, sw - k2);
  auto s2 = s.slice(2, 0, sh - k1).slice(3, k2, sw);
  auto s3 = s.slice(2, k1, sh).slice(3, 0, sw - k2);
  auto s4 = s.slice(2, k1, sh).slice(3, k2, sw);
  // (s4 + s1 - s2 - s3) / (k1 * k2) with the same operations in the same order, in place
  // after the first sum: one full-size temporary instead of four alive at once (4 GB in the
  // first level's channel attention at 3840x2160).
  auto out = s4 + s1;
  return out.sub_(s2).sub_(s3).div_(static_cast<double>(k1 * k2));
}

}  // namespace

LocalAvgPool2dOptions tlc_pool_options(int64_t feature_h, int64_t feature_w, int64_t train_h,
                                       int64_t train_w, bool fast_imp) {
  TORCH_CHECK(train_h > 0 && train_w > 0, "tlc_pool_options: train size must be positive");
  // base_size = (int(H * 1.5), int(W * 1.5)) in NAFNetLocal.__init__.
  const auto base_h = static_cast<int64_t>(static_cast<double>(train_h) * 1.5);
  const auto base_w = static_cast<int64_t>(static_cast<double>(train_w) * 1.5);
  LocalAvgPool2dOptions o;
  o.kernel_size = {feature_h * base_h / train_h, feature_w * base_w / train_w};
  o.max_r = {std::max<int64_t>(1, kStrides[0] * feature_h / train_h),
             std::max<int64_t>(1, kStrides[0] * feature_w / train_w)};
  o.fast_imp = fast_imp;
  return o;
}

torch::Tensor local_avg_pool2d(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  TORCH_CHECK(x.dim() == 4, "local_avg_pool2d: expected (N, C, H, W), got ", x.sizes());
  // Reduced precision (the bf16 execution): the integral image and the replicate padding
  // in float32. A bf16 running sum over a feature map would lose the window means, and
  // ATen 1.13 has no bf16 replication_pad2d on the CPU.
  if (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf)
    return local_avg_pool2d(x.to(torch::kFloat), o).to(x.scalar_type());
  const int64_t h = x.size(2), w = x.size(3);
  // Early out of the official forward: the window covers the whole feature map.
  if (o.kernel_size[0] >= h && o.kernel_size[1] >= w) {
    return torch::adaptive_avg_pool2d(x, {1, 1});
  }
  auto out = o.fast_imp ? fast_local_mean(x, o) : exact_local_mean(x, o);
  if (o.auto_pad) {
    const int64_t dh = h - out.size(2), dw = w - out.size(3);
    out = F::pad(
        out,
        F::PadFuncOptions({dw / 2, (dw + 1) / 2, dh / 2, (dh + 1) / 2}).mode(torch::kReplicate));
  }
  return out;
}

void LocalAvgPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << "LocalAvgPool2d(kernel_size=[" << options.kernel_size[0] << ", "
         << options.kernel_size[1] << "], fast_imp=" << (options.fast_imp ? "true" : "false")
         << ")";
}

}  // namespace samdeblur::models
