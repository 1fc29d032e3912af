// PSNR / SSIM; mirrors basicsr/metrics/psnr_ssim.py and metric_util.py of
// SAM-Deblur (HPLQAQ/SAM-Deblur). Deviations are noted where they occur.
#include "samdeblur/metrics/psnr_ssim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"

namespace samdeblur::metrics {
namespace {

namespace F = torch::nn::functional;

constexpr int kWindow = 11;  // Gaussian window size of all SSIM variants
constexpr int kHalf = kWindow / 2;
constexpr double kSigma = 1.5;

// Numpy-style shape string, as in the official assertion message.
std::string shape_str(const cv::Mat& m) {
  if (m.channels() == 1) return fmt::format("({}, {})", m.rows, m.cols);
  return fmt::format("({}, {}, {})", m.rows, m.cols, m.channels());
}

void check_pair(const cv::Mat& img1, const cv::Mat& img2, int crop_border, const char* what) {
  if (img1.dims != 2 || img2.dims != 2 || img1.rows != img2.rows || img1.cols != img2.cols ||
      img1.channels() != img2.channels()) {
    throw Error(fmt::format("{}: image shapes are different: {}, {}", what, shape_str(img1),
                            shape_str(img2)));
  }
  if (img1.empty()) throw Error(fmt::format("{}: empty images", what));
  if (img1.channels() != 1 && img1.channels() != 3) {
    throw Error(
        fmt::format("{}: expected 1 or 3 channels, got shape {} (the official 6-channel "
                    "stereo branch is not implemented)",
                    what, shape_str(img1)));
  }
  if (crop_border < 0 || 2 * crop_border >= img1.rows || 2 * crop_border >= img1.cols) {
    throw Error(fmt::format("{}: crop_border {} leaves no pixels of an image of shape {}", what,
                            crop_border, shape_str(img1)));
  }
}

// img.astype(float64)[crop:-crop, crop:-crop, ...] as a continuous CV_64F Mat.
cv::Mat crop_f64(const cv::Mat& img, int crop_border) {
  cv::Mat f64;
  img.convertTo(f64, CV_64F);
  if (crop_border == 0) return f64;
  const cv::Rect roi(crop_border, crop_border, img.cols - 2 * crop_border,
                     img.rows - 2 * crop_border);
  return f64(roi).clone();
}

double max_value_of(const cv::Mat& img) {
  double lo = 0.0, hi = 0.0;
  cv::minMaxLoc(img.reshape(1), &lo, &hi);
  return hi;
}

// The official peak value: 1 if img1.max() <= 1 else 255.
double peak_of(const cv::Mat& img1) { return max_value_of(img1) <= 1.0 ? 1.0 : 255.0; }

// (H, W, C) tensor sharing nothing with the Mat.
torch::Tensor mat_to_tensor(const cv::Mat& m) {
  const cv::Mat c = m.isContinuous() ? m : m.clone();
  const auto dtype = c.depth() == CV_64F ? torch::kFloat64 : torch::kFloat32;
  TORCH_CHECK(c.depth() == CV_64F || c.depth() == CV_32F, "mat_to_tensor: float Mat expected");
  return torch::from_blob(c.data, {c.rows, c.cols, c.channels()}, dtype).clone();
}

// The SSIM map from the five filtered quantities, in the official operation
// order (in the dtype of the inputs).
torch::Tensor ssim_map(const torch::Tensor& mu1, const torch::Tensor& mu2, const torch::Tensor& e11,
                       const torch::Tensor& e22, const torch::Tensor& e12, double c1, double c2) {
  const torch::Tensor mu1_sq = mu1.pow(2);
  const torch::Tensor mu2_sq = mu2.pow(2);
  const torch::Tensor mu1_mu2 = mu1 * mu2;
  const torch::Tensor sigma1_sq = e11 - mu1_sq;
  const torch::Tensor sigma2_sq = e22 - mu2_sq;
  const torch::Tensor sigma12 = e12 - mu1_mu2;
  return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) /
         ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2));
}

// Official _ssim (border reflect-101, map cropped by 5) and _ssim_cly
// (border replicate, full map): float64 cv::filter2D with the 11x11 window.
double ssim_filter2d(const cv::Mat& a, const cv::Mat& b, double peak, int border, bool crop_map) {
  const cv::Mat g = cv::getGaussianKernel(kWindow, kSigma, CV_64F);
  const cv::Mat window = g * g.t();
  auto filt = [&](const cv::Mat& src) {
    cv::Mat dst;
    cv::filter2D(src, dst, -1, window, cv::Point(-1, -1), 0.0, border);
    if (crop_map) dst = dst(cv::Rect(kHalf, kHalf, dst.cols - 2 * kHalf, dst.rows - 2 * kHalf));
    return mat_to_tensor(dst);
  };
  const torch::Tensor mu1 = filt(a), mu2 = filt(b);
  const torch::Tensor e11 = filt(a.mul(a)), e22 = filt(b.mul(b)), e12 = filt(a.mul(b));
  const double c1 = std::pow(0.01 * peak, 2), c2 = std::pow(0.03 * peak, 2);
  return ssim_map(mu1, mu2, e11, e22, e12, c1, c2).mean().item<double>();
}

// 1-D Gaussian of cv::getGaussianKernel(11, 1.5) (float64).
std::vector<double> gaussian_1d() {
  const cv::Mat g = cv::getGaussianKernel(kWindow, kSigma, CV_64F);
  return std::vector<double>(g.begin<double>(), g.end<double>());
}

// Replicate padding of 5 followed by the 11-tap Gaussian along an axis of
// length n is a linear map; along the channel axis (n = 3) we apply it as an
// n x n matrix M[c][c'] = sum of g[k] over k with clamp(c + k - 5) == c'.
torch::Tensor replicate_blur_matrix(int64_t n, torch::Dtype dtype) {
  const std::vector<double> g = gaussian_1d();
  std::vector<double> m(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    for (int k = 0; k < kWindow; ++k) {
      const int64_t src = std::clamp<int64_t>(c + k - kHalf, 0, n - 1);
      m[static_cast<size_t>(c * n + src)] += g[static_cast<size_t>(k)];
    }
  }
  return torch::tensor(m, torch::kFloat64).view({n, n}).to(dtype);
}

// Separable Gaussian of one band in planar layout. q: (C, Hb + 10, W) CPU
// tensor whose first and last 5 rows are the halo (real neighbours, or
// replicated edge rows at the image border). Returns (C, Hb, W), q's dtype.
torch::Tensor blur_band(const torch::Tensor& q) {
  const int64_t c = q.size(0), hp = q.size(1), w = q.size(2);
  const bool f64 = q.scalar_type() == torch::kFloat64;
  const int depth = f64 ? CV_64F : CV_32F;
  // Channel axis: replicate pad + 11 taps == multiplication by M (C x C).
  const torch::Tensor planes =
      replicate_blur_matrix(c, q.scalar_type()).mm(q.reshape({c, hp * w})).view({c, hp, w});
  torch::Tensor out = torch::empty_like(planes);
  const cv::Mat g = cv::getGaussianKernel(kWindow, kSigma, depth);
  for (int64_t i = 0; i < c; ++i) {
    const cv::Mat src(static_cast<int>(hp), static_cast<int>(w), depth, planes[i].data_ptr());
    cv::Mat dst(static_cast<int>(hp), static_cast<int>(w), depth, out[i].data_ptr());
    // H and W axes; the replicate border only reaches the halo rows along H,
    // which are dropped below, and is the official padding along W.
    cv::sepFilter2D(src, dst, depth, g, g, cv::Point(-1, -1), 0.0, cv::BORDER_REPLICATE);
    TORCH_CHECK(dst.data == out[i].data_ptr(), "sepFilter2D reallocated its output");
  }
  return out.narrow(1, kHalf, hp - 2 * kHalf);
}

// Row indices [r0 - 5, r1 + 5) clamped to the image: replicate padding of H.
torch::Tensor halo_rows(int64_t r0, int64_t r1, int64_t h) {
  return torch::arange(r0 - kHalf, r1 + kHalf, torch::kLong).clamp(0, h - 1);
}

// Official direct form: Conv3d(1, 1, 11, padding=5, padding_mode='replicate')
// whose weight is the float64 outer product g g^T g cast to the dtype.
torch::Tensor gaussian_direct(const torch::Tensor& x) {
  const torch::Tensor g = torch::tensor(gaussian_1d(), torch::kFloat64);
  const torch::Tensor w3 =
      (g.view({kWindow, 1, 1}) * g.view({1, kWindow, 1}) * g.view({1, 1, kWindow}))
          .to(x.options())
          .view({1, 1, kWindow, kWindow, kWindow});
  torch::Tensor v = x.unsqueeze(0).unsqueeze(0);
  v = F::pad(v,
             F::PadFuncOptions({kHalf, kHalf, kHalf, kHalf, kHalf, kHalf}).mode(torch::kReplicate));
  return F::conv3d(v, w3).squeeze(0).squeeze(0);
}

// Band height so that one band's 5 quantities stay near 4 Mi values.
int64_t band_height(int64_t requested, int64_t w, int64_t c) {
  if (requested > 0) return requested;
  const int64_t per_row = std::max<int64_t>(1, 5 * w * c);
  return std::max<int64_t>(32, (int64_t{1} << 22) / per_row);
}

torch::Tensor checked_volume(const torch::Tensor& v, const Ssim3dOptions& opts, const char* what) {
  TORCH_CHECK(v.dim() == 3 && v.numel() > 0, what, ": expected a non-empty (H, W, C) tensor, got ",
              v.sizes());
  TORCH_CHECK(opts.dtype == torch::kFloat32 || opts.dtype == torch::kFloat64, what,
              ": dtype must be float32 or float64");
  torch::Tensor x = v.detach();
  if (opts.mode == Gaussian3d::separable) x = x.to(torch::kCPU);
  return x.to(opts.dtype).contiguous();
}

}  // namespace

cv::Mat to_y_channel(const cv::Mat& img) {
  if (img.empty() || (img.channels() != 1 && img.channels() != 3)) {
    throw Error("to_y_channel: expected a 1- or 3-channel image, got shape " + shape_str(img));
  }
  cv::Mat f64;
  img.convertTo(f64, CV_64F);
  torch::NoGradGuard no_grad;
  // img.astype(float32) / 255. -- float32 division, as numpy does.
  const torch::Tensor x = mat_to_tensor(f64).to(torch::kFloat32).div(255.0);
  torch::Tensor y;
  if (x.size(2) == 3) {
    // bgr2ycbcr(y_only=True): np.dot with a float64 vector, i.e. float64
    // arithmetic on the float32 values, then float32(y / 255).
    const torch::Tensor d = x.to(torch::kFloat64);
    y = (d.select(2, 0) * 24.966 + d.select(2, 1) * 128.553 + d.select(2, 2) * 65.481 + 16.0)
            .div(255.0)
            .to(torch::kFloat32);
  } else {
    y = x.select(2, 0);
  }
  y = y.mul(255.0).contiguous();  // float32, not rounded
  cv::Mat out(static_cast<int>(y.size(0)), static_cast<int>(y.size(1)), CV_32FC1,
              y.data_ptr<float>());
  return out.clone();
}

double calculate_psnr(const cv::Mat& img1, const cv::Mat& img2, int crop_border,
                      bool test_y_channel) {
  check_pair(img1, img2, crop_border, "calculate_psnr");
  cv::Mat a = crop_f64(img1, crop_border);
  cv::Mat b = crop_f64(img2, crop_border);
  double mse = 0.0;
  if (test_y_channel) {
    a = to_y_channel(a);
    b = to_y_channel(b);
    // The official squares and averages in float32 (numpy pairwise mean);
    // we take the float32 difference and sum its squares in float64, which
    // differs by float32 rounding (~1e-7 relative on the MSE).
    cv::Mat diff, diff64;
    cv::subtract(a, b, diff);
    diff.convertTo(diff64, CV_64F);
    mse = diff64.dot(diff64) / static_cast<double>(diff64.total());
  } else {
    const cv::Mat diff = a - b;
    mse =
        diff.reshape(1).dot(diff.reshape(1)) / static_cast<double>(diff.total() * diff.channels());
  }
  if (mse == 0.0) return std::numeric_limits<double>::infinity();
  const double peak = peak_of(a);
  return 20.0 * std::log10(peak / std::sqrt(mse));
}

double calculate_ssim(const cv::Mat& img1, const cv::Mat& img2, int crop_border,
                      bool test_y_channel, bool ssim3d, const Ssim3dOptions& options) {
  check_pair(img1, img2, crop_border, "calculate_ssim");
  torch::NoGradGuard no_grad;
  const cv::Mat a = crop_f64(img1, crop_border);
  const cv::Mat b = crop_f64(img2, crop_border);
  if (test_y_channel) {
    // _ssim_cly: peak fixed at 255, replicate border, no crop of the map.
    cv::Mat ya, yb;
    to_y_channel(a).convertTo(ya, CV_64F);
    to_y_channel(b).convertTo(yb, CV_64F);
    return ssim_filter2d(ya, yb, 255.0, cv::BORDER_REPLICATE, /*crop_map=*/false);
  }
  const double peak = peak_of(a);
  if (ssim3d) return ssim_3d(mat_to_tensor(a), mat_to_tensor(b), peak, options);
  if (a.rows <= 2 * kHalf || a.cols <= 2 * kHalf) {
    throw Error(
        fmt::format("calculate_ssim(ssim3d=false): image of shape {} after crop_border {} "
                    "is too small for the 11x11 valid window",
                    shape_str(a), crop_border));
  }
  return ssim_filter2d(a, b, peak, cv::BORDER_REFLECT_101, /*crop_map=*/true);
}

torch::Tensor gaussian_filter_3d(const torch::Tensor& volume_hwc, const Ssim3dOptions& options) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = checked_volume(volume_hwc, options, "gaussian_filter_3d");
  if (options.mode == Gaussian3d::direct) return gaussian_direct(x);
  const torch::Tensor planar = x.permute({2, 0, 1}).contiguous();  // (C, H, W)
  const int64_t h = x.size(0);
  const int64_t step = band_height(options.band_rows, x.size(1), x.size(2));
  std::vector<torch::Tensor> bands;
  for (int64_t r0 = 0; r0 < h; r0 += step) {
    const int64_t r1 = std::min(h, r0 + step);
    bands.push_back(blur_band(planar.index_select(1, halo_rows(r0, r1, h))));
  }
  return torch::cat(bands, 1).permute({1, 2, 0}).contiguous();
}

double ssim_3d(const torch::Tensor& img1_hwc, const torch::Tensor& img2_hwc, double max_value,
               const Ssim3dOptions& options) {
  TORCH_CHECK(img1_hwc.sizes() == img2_hwc.sizes(),
              "ssim_3d: image shapes are different: ", img1_hwc.sizes(), ", ", img2_hwc.sizes());
  torch::NoGradGuard no_grad;
  // Converted to the working dtype before squaring (official: float32).
  const torch::Tensor x1 = checked_volume(img1_hwc, options, "ssim_3d");
  const torch::Tensor x2 = checked_volume(img2_hwc, options, "ssim_3d");
  const double c1 = std::pow(0.01 * max_value, 2), c2 = std::pow(0.03 * max_value, 2);
  if (options.mode == Gaussian3d::direct) {
    const auto f = [](const torch::Tensor& t) { return gaussian_direct(t); };
    // Mean in the working dtype, as the official float(ssim_map.mean()).
    return ssim_map(f(x1), f(x2), f(x1 * x1), f(x2 * x2), f(x1 * x2), c1, c2).mean().item<double>();
  }
  // Planar (C, H, W) row bands with a 5-row halo: exact, bounded memory.
  const torch::Tensor p1 = x1.permute({2, 0, 1}).contiguous();
  const torch::Tensor p2 = x2.permute({2, 0, 1}).contiguous();
  const int64_t h = x1.size(0);
  const int64_t step = band_height(options.band_rows, x1.size(1), x1.size(2));
  double total = 0.0;
  for (int64_t r0 = 0; r0 < h; r0 += step) {
    const int64_t r1 = std::min(h, r0 + step);
    const torch::Tensor rows = halo_rows(r0, r1, h);
    const torch::Tensor b1 = p1.index_select(1, rows), b2 = p2.index_select(1, rows);
    total += ssim_map(blur_band(b1), blur_band(b2), blur_band(b1 * b1), blur_band(b2 * b2),
                      blur_band(b1 * b2), c1, c2)
                 .sum(torch::kFloat64)
                 .item<double>();
  }
  // Mean accumulated in float64 over bands.
  return total / static_cast<double>(x1.numel());
}

}  // namespace samdeblur::metrics
