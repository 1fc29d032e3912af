#pragma once
// PSNR and SSIM exactly as SAM-Deblur's validation computes them
// (basicsr/metrics/psnr_ssim.py, metric_util.py): on the uint8 HWC BGR images
// returned by tensor2img, float64 arithmetic except where the official uses
// float32 (the Y channel). _ssim_3d, float32 in the official, is computed in
// float64 by default (see Ssim3dOptions). Golden values from the official code:
// scripts/make_metric_fixtures.py -> tests/data/metrics/expected.json.
//
// Inputs: cv::Mat of any depth with 1 or 3 channels (HWC); both images must
// have the same size and channel count. The 6-channel stereo branch of the
// official code is not implemented (Error).
#include <torch/torch.h>

#include <opencv2/core.hpp>

namespace samdeblur::metrics {

// PSNR in dB. crop_border pixels are removed from each edge first. With
// test_y_channel the images are converted with to_y_channel(). The peak value
// is 1 if max(img1) <= 1 else 255, evaluated on the cropped (and possibly
// Y-converted) img1, as the official does. Returns +inf when the MSE is 0.
// Throws Error on shape mismatch (naming both shapes) or a crop that leaves
// nothing.
double calculate_psnr(const cv::Mat& img1, const cv::Mat& img2, int crop_border,
                      bool test_y_channel = false);

// How _ssim_3d's 11x11x11 Gaussian (replicate padding 5) is applied.
enum class Gaussian3d {
  // Three 1-D passes (the kernel is separable): a C x C matrix along the
  // channel axis, cv::sepFilter2D along H and W; in row bands with a 5-row
  // halo so memory stays bounded. CPU.
  separable,
  // torch::conv3d with the full float64-built kernel, exactly the official
  // Conv3d (slow: ~7 s per 1280x720 image on one core). Any device.
  direct,
};

struct Ssim3dOptions {
  Gaussian3d mode = Gaussian3d::separable;
  // Arithmetic dtype. The official runs in float32, whose rounding in
  // E[x^2] - mu^2 (values up to 255^2) makes its SSIM differ from the exact
  // value by 1e-6 .. 1e-4 depending on image content (flat areas are worst),
  // and the digits depend on the conv backend (CUDA for the published
  // numbers, CPU for our fixtures). float64 (default) gives the exact value
  // of the official formula, reproducibly. {direct, kFloat32} reproduces an
  // official CPU run of the same torch build to ~1e-7.
  torch::Dtype dtype = torch::kFloat64;
  int64_t band_rows = 0;  // separable only; 0 = automatic (~4 Mi values/band)
};

// SSIM. crop_border as for PSNR. Then:
//  - test_y_channel: official _ssim_cly: Y channel (to_y_channel), 11x11
//    Gaussian (sigma 1.5) via filter2D with replicate border, float64,
//    C1/C2 from a peak of 255, mean over the whole map (no valid-crop).
//  - else ssim3d=true (default; produced the published numbers): official
//    _ssim_3d over the (H, W, C) volume, see Ssim3dOptions.
//  - else: official _ssim: filter2D with the 11x11 window on all channels
//    (reflect-101 border), map cropped to [5:-5, 5:-5], float64; needs
//    H, W > 10 after crop_border.
// Peak value (C1 = (0.01 peak)^2, C2 = (0.03 peak)^2) for the non-Y variants:
// 1 if max(cropped img1) <= 1 else 255.
double calculate_ssim(const cv::Mat& img1, const cv::Mat& img2, int crop_border,
                      bool test_y_channel = false, bool ssim3d = true,
                      const Ssim3dOptions& options = {});

// Official metric_util.to_y_channel on a 3-channel BGR image with values in
// [0, 255] (any depth): x = float32(v) / 255, Y = (24.966 B + 128.553 G +
// 65.481 R) + 16 in float64, then float32(Y / 255) * 255 in float32.
// A 1-channel image is float32(v) / 255 * 255. Returns CV_32FC1.
cv::Mat to_y_channel(const cv::Mat& img);

// The official _ssim_3d on (H, W, C) tensors of the same shape. max_value
// is the peak value (1 or 255). Inputs are not modified.
double ssim_3d(const torch::Tensor& img1_hwc, const torch::Tensor& img2_hwc, double max_value,
               const Ssim3dOptions& options = {});

// The 11x11x11 Gaussian of _ssim_3d with replicate padding 5:
// (H, W, C) -> (H, W, C) in options.dtype. Exposed for tests.
torch::Tensor gaussian_filter_3d(const torch::Tensor& volume_hwc,
                                 const Ssim3dOptions& options = {});

}  // namespace samdeblur::metrics
