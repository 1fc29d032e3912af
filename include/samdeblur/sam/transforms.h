#pragma once
// Pre-processing of SAM inputs (segment_anything/utils/transforms.py ResizeLongestSide).
// The official apply_image resizes uint8 images through PIL (torchvision to_pil_image +
// resize = Image.resize(BILINEAR)); pil_resize_bilinear reproduces PIL's ImagingResample
// bit-exactly, so encoder inputs match the official pipeline.
#include <torch/torch.h>

#include <opencv2/core.hpp>
#include <utility>

namespace samdeblur::sam {

// PIL (>= 7) Image.resize(size, BILINEAR) of an (H, W, C) uint8 CPU tensor -> (out_h, out_w, C)
// uint8: separable triangle filter with support 1 * max(in/out, 1) (antialiased when
// downscaling), coefficients normalised in double and quantised to 22 fractional bits,
// horizontal pass then vertical pass, each rounding to uint8 (half-up, clamped). A pass whose
// size does not change is skipped, as in PIL.
torch::Tensor pil_resize_bilinear(const torch::Tensor& hwc_u8, int64_t out_h, int64_t out_w);

class ResizeLongestSide {
 public:
  explicit ResizeLongestSide(int64_t target_length) : target_length_(target_length) {}
  int64_t target_length() const { return target_length_; }

  // (newh, neww): the long side becomes long_side_length, each side int(x * scale + 0.5).
  static std::pair<int64_t, int64_t> get_preprocess_shape(int64_t oldh, int64_t oldw,
                                                          int64_t long_side_length);
  // (H, W, C) uint8 -> (newh, neww, C) uint8 via pil_resize_bilinear.
  torch::Tensor apply_image(const torch::Tensor& hwc_u8) const;
  // (..., 2) (x, y) coordinates of an image of original_size (H, W) -> same shape, float64
  // (as the numpy apply_coords: x * (neww / W), y * (newh / H) in double).
  torch::Tensor apply_coords(const torch::Tensor& coords,
                             std::pair<int64_t, int64_t> original_size) const;
  // (B, 4) xyxy boxes -> (B, 4) float64.
  torch::Tensor apply_boxes(const torch::Tensor& boxes,
                            std::pair<int64_t, int64_t> original_size) const;

 private:
  int64_t target_length_;
};

}  // namespace samdeblur::sam
