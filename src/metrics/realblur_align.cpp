// RealBlur's alignment and masked PSNR / SSIM (realblur_align.h).
#include "samdeblur/metrics/realblur_align.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include "samdeblur/core/error.h"

namespace samdeblur::metrics {
namespace {

// numpy's buffer size: a reduction that is not done in one inner loop is done
// in chunks of this many elements, accumulated in order.
constexpr std::size_t kNumpyBufferSize = 8192;

// numpy's pairwise_sum (umath loops_utils): < 8 values in order; up to 128
// with eight interleaved partial sums; larger halves at a multiple of 8.
template <class T>
T pairwise(const T* a, std::size_t n) {
  if (n < 8) {
    T res = 0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

// np.sum over a flattened array: pairwise within buffer-sized chunks.
template <class T>
T numpy_sum(const T* a, std::size_t n) {
  T acc = 0;
  for (std::size_t i = 0; i < n; i += kNumpyBufferSize)
    acc += pairwise(a + i, std::min(kNumpyBufferSize, n - i));
  return acc;
}

// (H, W, 3) uint8 BGR -> float32 RGB with values float32(v) / 255 (skimage
// io.imread(...).astype('float32') / 255).
cv::Mat to_rgb_unit(const cv::Mat& bgr_u8, const char* what) {
  if (bgr_u8.type() != CV_8UC3)
    throw Error(fmt::format("realblur alignment: {} must be (H, W, 3) uint8, got type {}", what,
                            cv::typeToString(bgr_u8.type())));
  cv::Mat rgb;
  cv::cvtColor(bgr_u8, rgb, cv::COLOR_BGR2RGB);
  cv::Mat out(rgb.size(), CV_32FC3);
  const std::size_t n = rgb.total() * 3;
  const cv::Mat src = rgb.isContinuous() ? rgb : rgb.clone();
  const uint8_t* s = src.ptr<uint8_t>();
  float* d = out.ptr<float>();
  for (std::size_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]) / 255.0f;
  return out;
}

void check_same_size(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size())
    throw Error(fmt::format("realblur alignment: output is {}x{} but gt is {}x{}", a.cols, a.rows,
                            b.cols, b.rows));
}

// Elementwise float32 products a * b of two continuous CV_32FC3 images.
std::vector<float> products(const cv::Mat& a, const cv::Mat& b) {
  const std::size_t n = a.total() * 3;
  std::vector<float> p(n);
  const float* x = a.ptr<float>();
  const float* y = b.ptr<float>();
  for (std::size_t i = 0; i < n; ++i) p[i] = x[i] * y[i];
  return p;
}

double masked_psnr(const cv::Mat& gt, const cv::Mat& test, const cv::Mat& mask) {
  const std::size_t n = gt.total() * 3;
  std::vector<double> sq(n);
  const float* x = gt.ptr<float>();
  const float* y = test.ptr<float>();
  for (std::size_t i = 0; i < n; ++i) {
    const float d = x[i] - y[i];
    sq[i] = static_cast<double>(d * d);  // float32 square, float64 sum
  }
  const double err = numpy_sum(sq.data(), n);
  const float count = numpy_sum(mask.ptr<float>(), n);
  return 10.0 * std::log10(1.0 / (err / static_cast<double>(count)));
}

// scipy.ndimage gaussian_filter(sigma 1.5, truncate 3.5, mode 'reflect') on a
// CV_64FC1 image: 11 taps, exp(-x^2 / (2 sigma^2)) normalised to sum 1;
// scipy's 'reflect' repeats the edge sample (OpenCV BORDER_REFLECT).
cv::Mat gaussian(const cv::Mat& img) {
  static const cv::Mat kernel = [] {
    const double sigma = 1.5;
    const int radius = static_cast<int>(3.5 * sigma + 0.5);
    cv::Mat k(2 * radius + 1, 1, CV_64F);
    double sum = 0;
    for (int x = -radius; x <= radius; ++x) {
      k.at<double>(x + radius) = std::exp(-0.5 / (sigma * sigma) * x * x);
      sum += k.at<double>(x + radius);
    }
    return cv::Mat(k / sum);
  }();
  cv::Mat out;
  cv::sepFilter2D(img, out, CV_64F, kernel, kernel, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  return out;
}

// skimage structural_similarity(full=True) map of one channel, float64,
// gaussian_weights, use_sample_covariance=False, data_range 1.
cv::Mat ssim_map(const cv::Mat& x, const cv::Mat& y) {
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const cv::Mat ux = gaussian(x), uy = gaussian(y);
  const cv::Mat uxx = gaussian(x.mul(x)), uyy = gaussian(y.mul(y)), uxy = gaussian(x.mul(y));
  const cv::Mat vx = uxx - ux.mul(ux), vy = uyy - uy.mul(uy), vxy = uxy - ux.mul(uy);
  const cv::Mat a1 = 2 * ux.mul(uy) + c1, a2 = 2 * vxy + c2;
  const cv::Mat b1 = ux.mul(ux) + uy.mul(uy) + c1, b2 = vx + vy + c2;
  return a1.mul(a2) / b1.mul(b2);
}

}  // namespace

const std::vector<std::string>& alignment_names() {
  static const std::vector<std::string> names = {"none", "realblur"};
  return names;
}

const std::string& alignment_name(Alignment a) {
  return alignment_names().at(static_cast<std::size_t>(a));
}

Alignment parse_alignment(const std::string& value, const std::string& where,
                          const std::string& key) {
  const auto& names = alignment_names();
  for (std::size_t k = 0; k < names.size(); ++k)
    if (value == names[k]) return static_cast<Alignment>(k);
  throw ConfigError(
      fmt::format("{}: {} must be one of {}, got '{}'", where, key, fmt::join(names, ", "), value));
}

float numpy_pairwise_sum(const float* values, std::size_t n) { return numpy_sum(values, n); }

namespace {

// Steps 1 (intensity matching) on the float32 RGB images z (output) and x (gt).
cv::Mat intensity_matched(const cv::Mat& z, const cv::Mat& x, float& scale) {
  const std::size_t n = x.total() * 3;
  const std::vector<float> xz = products(x, z), zz = products(z, z);
  scale = numpy_sum(xz.data(), n) / numpy_sum(zz.data(), n);  // float32, as numpy
  cv::Mat zs(z.size(), CV_32FC3);
  for (std::size_t i = 0; i < n; ++i) zs.ptr<float>()[i] = scale * z.ptr<float>()[i];
  return zs;
}

// Step 3: zs onto x's grid through `warp`, the mask of covered pixels, both masked.
void warp_and_mask(const cv::Mat& zs, const cv::Mat& x, RealBlurAlignment& a) {
  const cv::Mat warp(a.warp);
  const cv::Size size = x.size();
  cv::warpPerspective(zs, a.output, warp, size, cv::INTER_CUBIC | cv::WARP_INVERSE_MAP,
                      cv::BORDER_REFLECT);
  cv::warpPerspective(cv::Mat(size, CV_32FC3, cv::Scalar::all(1)), a.mask, warp, size,
                      cv::INTER_NEAREST | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT,
                      cv::Scalar::all(0));
  a.output = a.output.mul(a.mask);
  a.gt = x.mul(a.mask);
}

}  // namespace

RealBlurAlignment realblur_align(const cv::Mat& output_u8, const cv::Mat& gt_u8) {
  check_same_size(output_u8, gt_u8);
  const cv::Mat z = to_rgb_unit(output_u8, "output");
  const cv::Mat x = to_rgb_unit(gt_u8, "gt");
  RealBlurAlignment a;
  const cv::Mat zs = intensity_matched(z, x, a.intensity_scale);

  // 2. ECC homography from gray(gt) (template) to gray(zs) (input).
  cv::Mat x_gray, zs_gray;
  cv::cvtColor(x, x_gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(zs, zs_gray, cv::COLOR_RGB2GRAY);
  cv::Mat warp = cv::Mat::eye(3, 3, CV_32F);
  try {
    a.ecc = cv::findTransformECC(
        x_gray, zs_gray, warp, cv::MOTION_HOMOGRAPHY,
        cv::TermCriteria(cv::TermCriteria::COUNT + cv::TermCriteria::EPS, 100, 0.0), cv::noArray(),
        5);
  } catch (const cv::Exception& e) {
    throw Error(
        fmt::format("realblur alignment: ECC registration of the output to the gt failed "
                    "({}x{}): {}",
                    x.cols, x.rows, e.err));
  }
  a.warp = cv::Matx33f(warp.ptr<float>());
  warp_and_mask(zs, x, a);
  return a;
}

RealBlurAlignment realblur_apply_warp(const cv::Mat& output_u8, const cv::Mat& gt_u8,
                                      const cv::Matx33f& warp) {
  check_same_size(output_u8, gt_u8);
  const cv::Mat z = to_rgb_unit(output_u8, "output");
  const cv::Mat x = to_rgb_unit(gt_u8, "gt");
  RealBlurAlignment a;
  const cv::Mat zs = intensity_matched(z, x, a.intensity_scale);
  a.warp = warp;
  a.ecc = std::numeric_limits<double>::quiet_NaN();
  warp_and_mask(zs, x, a);
  return a;
}

double realblur_psnr(const RealBlurAlignment& a) { return masked_psnr(a.gt, a.output, a.mask); }

double realblur_ssim(const RealBlurAlignment& a) {
  constexpr int kPad = 5;  // (11 - 1) / 2: the official crop of the SSIM map
  const int h = a.gt.rows, w = a.gt.cols;
  if (h <= 2 * kPad || w <= 2 * kPad)
    throw Error(fmt::format("realblur ssim: image {}x{} is too small (needs > {} pixels a side)", w,
                            h, 2 * kPad));
  cv::Mat gt64, out64;
  a.gt.convertTo(gt64, CV_64F);
  a.output.convertTo(out64, CV_64F);
  std::vector<cv::Mat> gt_c, out_c, mask_c;
  cv::split(gt64, gt_c);
  cv::split(out64, out_c);
  cv::split(a.mask, mask_c);
  double mean = 0;
  for (int c = 0; c < 3; ++c) {
    const cv::Mat s = ssim_map(gt_c[c], out_c[c]);
    // sum(axis=0).sum(axis=0) of the cropped masked map: rows in order per
    // column, then columns in order.
    double total = 0;
    float count = 0;  // float32 sums of the float32 mask, as numpy
    for (int j = kPad; j < w - kPad; ++j) {
      double col = 0;
      float col_count = 0;
      for (int i = kPad; i < h - kPad; ++i) {
        const float m = mask_c[c].at<float>(i, j);
        col += s.at<double>(i, j) * static_cast<double>(m);
        col_count += m;
      }
      total += col;
      count += col_count;
    }
    mean += total / static_cast<double>(count);
  }
  return mean / 3;
}

double realblur_unaligned_psnr(const cv::Mat& test_u8, const cv::Mat& gt_u8) {
  check_same_size(test_u8, gt_u8);
  const cv::Mat t = to_rgb_unit(test_u8, "input");
  const cv::Mat x = to_rgb_unit(gt_u8, "gt");
  return masked_psnr(x, t, cv::Mat(x.size(), CV_32FC3, cv::Scalar::all(1)));
}

}  // namespace samdeblur::metrics
