// SLIC superpixel masks (the weight-free mask source for demos and tests).
#include "samdeblur/masks/superpixels.h"

#include <gtest/gtest.h>

#include "samdeblur/core/error.h"
#include "samdeblur/sam/amg.h"
#include "support/test_support.h"

using namespace samdeblur;
using namespace samdeblur::sam;
using samdeblur::masks::superpixel_masks;
using samdeblur::masks::SuperpixelOptions;

using samdeblur::test::ramp_image;

TEST(Superpixels, DeterministicPartitionOfTheImage) {
  const cv::Mat img = ramp_image(50, 70);
  SuperpixelOptions so;
  so.region_size = 16;
  const auto a = superpixel_masks(img, so);
  const auto b = superpixel_masks(img, so, OutputMode::coco_rle);
  ASSERT_GT(a.masks.size(), 3u);
  ASSERT_EQ(a.masks.size(), b.masks.size());
  auto cover = torch::zeros({50, 70}, torch::kInt32);
  int64_t area = 0;
  for (size_t i = 0; i < a.masks.size(); ++i) {
    EXPECT_EQ(a.masks[i].rle, b.masks[i].rle);  // deterministic
    EXPECT_EQ(coco_decode_rle(b.masks[i].coco), b.masks[i].rle);
    cover += a.masks[i].binary_mask.to(torch::kInt32);
    area += a.masks[i].area;
    EXPECT_EQ(a.masks[i].crop_box, (Box{0, 0, 70, 50}));
  }
  EXPECT_EQ(area, 50 * 70);
  EXPECT_TRUE(torch::all(cover == 1).item<bool>()) << "superpixels must partition the image";
  // Regions larger than the image (OpenCV's SLIC would crash) and tiny images.
  EXPECT_FALSE(superpixel_masks(ramp_image(20, 24), {}).masks.empty());
  EXPECT_EQ(superpixel_masks(ramp_image(3, 5), {}).masks.size(), 1u);
}

TEST(Superpixels, OptionsAreRangeChecked) {
  SuperpixelOptions so;
  so.region_size = 1;
  const std::string err =
      samdeblur::test::error_of<ConfigError>([&] { superpixel_masks(ramp_image(20, 24), so); });
  EXPECT_NE(err.find("region_size: must be >= 2, got 1"), std::string::npos) << err;
  so = {};
  so.ruler = 0;
  EXPECT_THROW(superpixel_masks(ramp_image(20, 24), so), ConfigError);
}
