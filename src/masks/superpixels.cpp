// SLIC superpixel masks (see include/samdeblur/masks/superpixels.h).
#include "samdeblur/masks/superpixels.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <opencv2/imgproc.hpp>
#include <opencv2/ximgproc/slic.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/sam/amg.h"

namespace samdeblur::masks {

using namespace sam;  // MaskRecord, GenerateResult, OutputMode and the amg helpers

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

GenerateResult superpixel_masks(const cv::Mat& image_bgr, const SuperpixelOptions& options,
                                OutputMode mode) {
  if (image_bgr.empty() || image_bgr.depth() != CV_8U || image_bgr.channels() != 3)
    throw Error("superpixel_masks: expected a non-empty uint8 3-channel image");
  try {
    config::check_fields(options);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("superpixel ") + e.what());
  }
  const auto t0 = Clock::now();
  cv::Mat lab;
  cv::cvtColor(image_bgr, lab, cv::COLOR_BGR2Lab);
  cv::Mat labels;
  const int short_side = std::min(image_bgr.rows, image_bgr.cols);
  if (short_side < 4) {
    labels = cv::Mat::zeros(image_bgr.size(), CV_32S);  // too small to split
  } else {
    // OpenCV's SLIC crashes when the region is larger than the image: clamp it.
    const int region = std::min(options.region_size, short_side);
    auto slic = cv::ximgproc::createSuperpixelSLIC(lab, cv::ximgproc::SLICO, region, options.ruler);
    slic->iterate(options.iterations);
    slic->enforceLabelConnectivity(options.min_element_size_percent);
    slic->getLabels(labels);  // CV_32S
  }
  const int64_t h = labels.rows, w = labels.cols;
  const auto label_t = torch::from_blob(labels.data, {h, w}, torch::kInt32).clone();
  const auto uniq = std::get<0>(at::_unique(label_t, /*sorted=*/true));
  GenerateResult result;
  result.crops = 1;
  for (int64_t k = 0; k < uniq.numel(); ++k) {
    const auto mask = label_t == uniq[k];
    MaskRecord r;
    r.rle = mask_to_rle(mask.unsqueeze(0))[0];
    r.area = area_from_rle(r.rle);
    const auto b = batched_mask_to_box(mask);
    r.bbox = box_xyxy_to_xywh(
        {b[0].item<int64_t>(), b[1].item<int64_t>(), b[2].item<int64_t>(), b[3].item<int64_t>()});
    const auto nz = torch::nonzero(mask).to(torch::kFloat64).mean(0);  // (y, x) centroid
    r.point_coords = {{nz[1].item<double>(), nz[0].item<double>()}};
    r.predicted_iou = 1.0;
    r.stability_score = 1.0;
    r.crop_box = {0, 0, w, h};
    if (mode == OutputMode::coco_rle) r.coco = coco_encode_rle(r.rle);
    if (mode == OutputMode::binary_mask) r.binary_mask = mask;
    result.masks.push_back(std::move(r));
  }
  result.times.post = seconds_since(t0);
  return result;
}

}  // namespace samdeblur::masks
