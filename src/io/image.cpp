// Image I/O conventions; mirrors basicsr/utils/img_util.py of SAM-Deblur.
#include "samdeblur/io/image.h"

#include <fmt/format.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <vector>

#include "image_check.h"
#include "regular_file.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"

namespace samdeblur::io {
namespace {

std::string mat_shape(const cv::Mat& m) {
  return fmt::format("({}, {}, {}) depth {}", m.rows, m.cols, m.channels(), m.depth());
}

}  // namespace

cv::Mat decode_image_bgr(const std::vector<uint8_t>& bytes, const std::string& name,
                         bool grayscale) {
  if (bytes.empty()) throw FileError(name, "empty file, not an image");
  // cv::imdecode only warns about a truncated JPEG or a damaged PNG and returns pixels
  // that were never decoded (different on every run): JPEG and PNG are decoded here in one
  // pass checked to their end; what only OpenCV decodes exactly (EXIF orientation, CMYK,
  // 16-bit, ...) was checked to its end by the same call and is decoded by cv::imdecode.
  cv::Mat img;
  if (detail::decode_image_checked(bytes.data(), bytes.size(), grayscale, name, &img)) return img;
  try {
    img = cv::imdecode(bytes, grayscale ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw FileError(name, std::string("cannot decode image: ") + e.what());
  }
  if (img.empty()) throw FileError(name, "cannot decode image (unknown or corrupt format)");
  return img;
}

cv::Mat read_image_bgr(const std::string& path, bool grayscale) {
  return decode_image_bgr(detail::read_regular_file(path, "image"), path, grayscale);
}

void check_image_file(const std::string& path) {
  const std::vector<uint8_t> bytes = detail::read_regular_file(path, "image");
  if (bytes.empty()) throw FileError(path, "empty file, not an image");
  if (!detail::check_image_structure(bytes.data(), bytes.size(), path))
    decode_image_bgr(bytes, path);  // no structural check for this format: decode it
}

torch::Tensor image_to_tensor(const cv::Mat& bgr_u8) {
  if (bgr_u8.empty() || bgr_u8.depth() != CV_8U || bgr_u8.dims != 2) {
    throw Error("image_to_tensor: expected a non-empty 2-D uint8 image, got " + mat_shape(bgr_u8));
  }
  const cv::Mat img = bgr_u8.isContinuous() ? bgr_u8 : bgr_u8.clone();
  const int64_t c = img.channels();
  // (H, W, C) view of the Mat; the uint8 -> float32 conversion copies it.
  torch::Tensor hwc = torch::from_blob(img.data, {img.rows, img.cols, c}, torch::kUInt8);
  if (c == 3) hwc = hwc.flip({2});  // BGR -> RGB
  // float32 true division, bit-identical to numpy's float32 array / 255.
  return hwc.permute({2, 0, 1}).to(torch::kFloat32).div(255.0).contiguous();
}

cv::Mat tensor_to_image(const torch::Tensor& chw_rgb) {
  torch::Tensor t = chw_rgb.detach();
  if (t.dim() == 4) {
    TORCH_CHECK(t.size(0) == 1, "tensor_to_image: batch of ", t.size(0),
                " images not supported (official tensor2img tiles it with make_grid), shape ",
                t.sizes());
    t = t.squeeze(0);
  }
  if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3 || t.numel() == 0) {
    std::ostringstream shape;
    shape << chw_rgb.sizes();
    throw Error("tensor_to_image: expected (C,H,W), (1,C,H,W) or (H,W), got " + shape.str());
  }
  // Official order: .float(), clamp_(0, 1), (x - 0) / (1 - 0), [RGB->BGR],
  // (x * 255.0).round() in float32 (numpy rounds half to even, as torch does).
  torch::Tensor x = t.to(torch::kCPU, torch::kFloat32).clamp(0.0, 1.0);
  if (x.size(0) == 3) x = x.flip({0});  // RGB -> BGR
  torch::Tensor u8 = x.mul(255.0).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  const int channels = static_cast<int>(u8.size(2));
  cv::Mat view(static_cast<int>(u8.size(0)), static_cast<int>(u8.size(1)),
               CV_MAKETYPE(CV_8U, channels), u8.data_ptr<uint8_t>());
  return view.clone();
}

void write_image_atomic(const std::string& path, const cv::Mat& image) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext.empty()) throw FileError(path, "no file extension to choose an image format");
  std::vector<unsigned char> buf;
  bool ok = false;
  try {
    ok = cv::imencode(ext, image, buf);
  } catch (const cv::Exception& e) {
    throw FileError(path, std::string("cannot encode image: ") + e.what());
  }
  if (!ok) throw FileError(path, "cannot encode image as " + ext);
  write_file_atomic(path, buf.data(), buf.size());
}

torch::Tensor read_mask_png(const std::string& path) {
  return image_to_tensor(read_image_bgr(path, /*grayscale=*/true));
}

}  // namespace samdeblur::io
