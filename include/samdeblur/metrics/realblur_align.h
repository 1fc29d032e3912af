#pragma once
// RealBlur's own scoring protocol (`val.align: realblur`): each output is
// registered to its ground truth before PSNR / SSIM, and only the pixels the
// warped output covers are scored. Mirrors image_align(), compute_psnr() and
// the masked SSIM of evaluation_RealBlur_ecc.py in rimchang/RealBlur (the
// benchmark authors' evaluation, pinned there to skimage 0.17.2 and OpenCV
// 4.2.0; the evaluate_realblur.py copies in MPRNet / Restormer / MLWNet carry
// the same three functions). Golden values from that code:
// scripts/fixtures/make_realblur_fixtures.py -> tests/data/metrics/realblur.json.
//
// The protocol, on float32 RGB images with values v / 255:
//  1. intensity matching: z <- (sum(gt * z) / sum(z * z)) * z, both sums in
//     float32 in numpy's order over the flattened (H, W, 3) array;
//  2. ECC (cv::findTransformECC): template gray(gt), input gray(z) (RGB2GRAY in
//     float32), MOTION_HOMOGRAPHY from the identity, 100 iterations, eps 0
//     (always 100 unless it fails), gaussFiltSize 5, no mask;
//  3. the output is warped onto the ground truth's grid (warpPerspective,
//     WARP_INVERSE_MAP, INTER_CUBIC, BORDER_REFLECT); the mask is a warp of
//     ones (INTER_NEAREST, BORDER_CONSTANT 0); output and gt are multiplied by it;
//  4. PSNR: 10 log10(1 / (sum((gt - out)^2) / sum(mask))) (squares in float32,
//     sum in float64), +inf when equal;
//  5. SSIM: skimage structural_similarity per channel (Gaussian sigma 1.5,
//     truncate 3.5 = 11 taps, scipy 'reflect' border, population covariance,
//     data_range 1, K1 0.01, K2 0.03) in float64 as skimage 0.17.2 computes it;
//     the SSIM map times the mask, cropped by 5 pixels on each side, summed and
//     divided by the cropped mask's sum per channel; mean of the three channels.
// The blurry input is scored unaligned (the official aligns only the
// deblurred image; its input alignment is commented out): PSNR of step 4 with
// a mask of ones.
#include <opencv2/core.hpp>

#include <string>
#include <vector>

namespace samdeblur::metrics {

// `val.align`: none (SAM-Deblur: unaligned PSNR / SSIM) or realblur.
enum class Alignment { none, realblur };

// "none" | "realblur".
const std::vector<std::string>& alignment_names();
const std::string& alignment_name(Alignment a);
// Throws ConfigError "<where>: <key> must be one of none, realblur, got '<value>'".
Alignment parse_alignment(const std::string& value, const std::string& where,
                          const std::string& key);

// The aligned images of one (output, gt) pair; all (H, W, 3) CV_32FC3 RGB.
struct RealBlurAlignment {
  cv::Mat output;             // zr: intensity-matched output on gt's grid, times mask
  cv::Mat gt;                 // xr: gt (v / 255) times mask
  cv::Mat mask;               // cr: 1 where the warped output covers gt's grid, else 0
  cv::Matx33f warp;           // ECC homography (maps gt pixel coords to output coords)
  float intensity_scale = 1;  // sum(gt * z) / sum(z * z)
  double ecc = 0;             // final enhanced correlation coefficient
};

// Steps 1-3 on (H, W, 3) uint8 BGR images of equal size (tensor2img, as
// written to PNG). Throws Error on a size / type mismatch, and when ECC fails
// (a NaN or a correlation that can only decrease: uncorrelated images, a flat
// image), with OpenCV's reason.
RealBlurAlignment realblur_align(const cv::Mat& output_u8, const cv::Mat& gt_u8);

// Steps 1 and 3 with a given homography instead of ECC's (ecc is NaN): the
// deterministic part of the protocol, for tests against the reference's warp.
RealBlurAlignment realblur_apply_warp(const cv::Mat& output_u8, const cv::Mat& gt_u8,
                                      const cv::Matx33f& warp);

// Step 4 on aligned CV_32FC3 images and their mask.
double realblur_psnr(const RealBlurAlignment& a);
// Step 5.
double realblur_ssim(const RealBlurAlignment& a);

// Step 4 without alignment (the official blur_psnr): uint8 BGR images, mask of ones.
double realblur_unaligned_psnr(const cv::Mat& test_u8, const cv::Mat& gt_u8);

// float32 sum in numpy's order (np.sum of a contiguous float32 array with the
// default buffer size): chunks of 8192 values added in order, each chunk summed
// pairwise (halves at multiples of 8; up to 128 values, 8 interleaved partial
// sums). Checked against numpy 1.19 and 1.26 on arrays up to 1.6 M values.
// Exposed for tests.
float numpy_pairwise_sum(const float* values, std::size_t n);

}  // namespace samdeblur::metrics
