#pragma once
// Deterministic weight-free masks for demos and tests: cv::ximgproc SLICO
// superpixels (region_size pixels, ruler 10, 10 iterations, connectivity
// enforced) of the image, one record per superpixel in label order, with
// predicted_iou = stability_score = 1, the centroid as point and the whole
// image as crop box (region_size is clamped to the image's short side, and an
// image shorter than 4 pixels is one superpixel). Not a substitute for SAM:
// callers must ask for it.
#include <opencv2/core.hpp>

#include "samdeblur/masks/options.h"
#include "samdeblur/sam/mask_generator.h"

namespace samdeblur::masks {

// Options are range-checked (ConfigError naming the field).
sam::GenerateResult superpixel_masks(const cv::Mat& image_bgr,
                                     const SuperpixelOptions& options = {},
                                     sam::OutputMode mode = sam::OutputMode::binary_mask);

}  // namespace samdeblur::masks
