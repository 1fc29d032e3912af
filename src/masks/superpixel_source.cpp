// Mask source "superpixels": SLIC superpixels, no weights (masks/superpixels.h).
#include <fmt/format.h>

#include "samdeblur/masks/source.h"
#include "samdeblur/masks/superpixels.h"

namespace samdeblur::masks {

namespace {

class SuperpixelSource : public MaskSource {
 public:
  SuperpixelSource(const SuperpixelOptions& options, sam::OutputMode mode)
      : options_(options), mode_(mode) {
    config::check_fields(options_);
  }
  sam::GenerateResult generate(const cv::Mat& image_bgr, const std::string&) override {
    return superpixel_masks(image_bgr, options_, mode_);
  }
  std::string describe() const override {
    return fmt::format("SLIC superpixels (region {} px), NOT Segment Anything",
                       options_.region_size);
  }

 private:
  SuperpixelOptions options_;
  sam::OutputMode mode_;
};

}  // namespace

std::unique_ptr<MaskSource> make_superpixel_source(const SuperpixelOptions& options,
                                                   sam::OutputMode mode) {
  return std::make_unique<SuperpixelSource>(options, mode);
}

}  // namespace samdeblur::masks
