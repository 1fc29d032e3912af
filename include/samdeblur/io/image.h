#pragma once
// Image I/O conventions of samdeblur. This is the ONE place that decides
// colour order, layout and uint8 rounding; every other component calls it.
//
//   on disk / cv::Mat : uint8, HWC, BGR (OpenCV order), like the official
//                       basicsr.utils.img_util.imfrombytes / imwrite
//   tensors           : float32, CHW, RGB, values in [0, 1], like
//                       img2tensor(bgr2rgb=True) / tensor2img(rgb2bgr=True)
//
// Reference: SAM-Deblur basicsr/utils/img_util.py (imfrombytes, img2tensor,
// tensor2img, imwrite). Golden values: scripts/make_metric_fixtures.py.
#include <torch/torch.h>

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace samdeblur::io {

// Decodes the file's bytes with cv::imdecode (IMREAD_COLOR, or
// IMREAD_GRAYSCALE when grayscale=true), like the official imfrombytes; EXIF
// orientation is applied as imdecode does. Returns CV_8UC3 (BGR) or CV_8UC1.
// Throws FileError naming the path when the file is not a regular file or cannot
// be read or decoded. Deviation from the official (which scores whatever cv2
// returns): JPEG and PNG data are decoded to their end with libjpeg / libpng,
// and a truncated or corrupt file ("truncated or corrupt JPEG: Premature end of
// JPEG file", a bad PNG CRC, ...) is refused instead of being returned with
// undecoded pixels. The file is read once and, in the common cases (8-bit PNG,
// JPEG without EXIF / CMYK), decoded once, by the same libjpeg / libpng calls
// OpenCV makes, to the same bytes; the rest is checked to its end, then decoded
// by cv::imdecode. Images above OpenCV's CV_IO_MAX_IMAGE_PIXELS (2^30 by
// default) are refused before any pixel buffer is allocated.
cv::Mat read_image_bgr(const std::string& path, bool grayscale = false);

// Checks that the image file `path` is complete without decoding its pixels
// where the format allows (a few percent of a decode): a JPEG's marker segments
// up to the end-of-image marker (its entropy-coded data scanned, not decoded), a
// PNG's chunks up to IEND with every CRC, the pixel limit from the header; other
// formats are decoded (read_image_bgr). Throws FileError naming the path, with
// read_image_bgr's messages ("truncated or corrupt JPEG: ...", ...). A JPEG whose
// entropy-coded data are corrupt inside an intact structure passes here and is
// refused by read_image_bgr. For checking a whole dataset before any output.
void check_image_file(const std::string& path);

// The same for an in-memory file image; `name` is used in messages.
cv::Mat decode_image_bgr(const std::vector<uint8_t>& bytes, const std::string& name,
                         bool grayscale = false);

// uint8 HWC image -> float32 (C, H, W) tensor with values x / 255 (float32
// division, bit-identical to numpy's img.astype(float32) / 255.).
// 3 channels: BGR -> RGB. 1 channel: (1, H, W), no colour conversion (the CAT
// mask channel). Other channel counts keep their order, as img2tensor does.
// Throws Error for a non-uint8 or empty image.
torch::Tensor image_to_tensor(const cv::Mat& bgr_u8);

// Official tensor2img(tensor, rgb2bgr=True, out_type=uint8, min_max=(0, 1)):
// accepts (C, H, W), (1, C, H, W) or (H, W), any dtype and device; converts to
// float32, clamps to [0, 1], multiplies by 255 in float32 and rounds half to
// even (numpy .round()), then casts to uint8. 3 channels: RGB -> BGR;
// 1 channel or 2-D: an (H, W) CV_8UC1 image. The tensor is not modified.
// Throws Error for other ranks or a batch larger than 1 (the official would
// tile the batch with torchvision's make_grid, which we do not reproduce).
cv::Mat tensor_to_image(const torch::Tensor& chw_rgb);

// Encodes with cv::imencode using the path's extension (OpenCV's default
// parameters, like the official imwrite / cv2.imwrite) and writes it with
// samdeblur::write_file_atomic (parent folders are created). Throws FileError
// naming the path for an unknown extension or an encoding failure.
void write_image_atomic(const std::string& path, const cv::Mat& image);

// A mask / label-map image read as grayscale (official imfrombytes(
// flag='grayscale', float32=True)) -> float32 (1, H, W) tensor, values / 255.
torch::Tensor read_mask_png(const std::string& path);

}  // namespace samdeblur::io
