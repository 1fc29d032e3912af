// ResizeLongestSide and the PIL-compatible bilinear resize against the official
// transforms.py + PIL 9.4 (tests/data/sam/model/resize.npz, scripts/make_sam_fixtures.py).
#include "samdeblur/sam/transforms.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "support/test_support.h"

namespace samdeblur::sam {
namespace {

const std::string kHint =
    "regenerate with: PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 "
    "scripts/make_sam_fixtures.py";

std::map<std::string, torch::Tensor> fixture(const std::string& name) {
  return test::load_npz_fixture("sam/model/" + name, kHint);
}

TEST(SamTransforms, PilBilinearResizeMatchesPilBitExactly) {
  const auto fx = fixture("resize.npz");
  int cases = 0;
  for (int i = 0; fx.count("case" + std::to_string(i) + "_in"); ++i, ++cases) {
    const std::string p = "case" + std::to_string(i) + "_";
    const auto& in = fx.at(p + "in");
    const auto& expected = fx.at(p + "out");
    ResizeLongestSide tr(fx.at(p + "target").item<int64_t>());
    auto out = tr.apply_image(in);
    ASSERT_EQ(out.sizes(), expected.sizes()) << p << " from " << in.sizes() << "; " << kHint;
    auto diff = (out.to(torch::kInt) - expected.to(torch::kInt)).abs();
    const int64_t worst = diff.max().item<int64_t>();
    const int64_t where = diff.flatten().argmax().item<int64_t>();
    EXPECT_EQ(worst, 0) << p << in.sizes() << " -> " << out.sizes() << ": "
                        << diff.gt(0).sum().item<int64_t>() << " values differ, worst " << worst
                        << " at flat index " << where;
  }
  EXPECT_GE(cases, 6) << kHint;
}

TEST(SamTransforms, PreprocessShapeAndCoordsMatchOfficial) {
  const auto fx = fixture("resize.npz");
  for (int i = 0; fx.count("case" + std::to_string(i) + "_in"); ++i) {
    const std::string p = "case" + std::to_string(i) + "_";
    const auto& in = fx.at(p + "in");
    const int64_t target = fx.at(p + "target").item<int64_t>();
    const auto [h, w] = ResizeLongestSide::get_preprocess_shape(in.size(0), in.size(1), target);
    EXPECT_EQ(h, fx.at(p + "shape")[0].item<int64_t>()) << p;
    EXPECT_EQ(w, fx.at(p + "shape")[1].item<int64_t>()) << p;
    ResizeLongestSide tr(target);
    auto c = tr.apply_coords(fx.at(p + "coords"), {in.size(0), in.size(1)});
    EXPECT_EQ(c.scalar_type(), torch::kDouble);
    EXPECT_TRUE(torch::equal(c, fx.at(p + "coords_t"))) << p << c << fx.at(p + "coords_t");
  }
  // int(x + 0.5) rounding of the short side.
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(30, 500, 128),
            (std::pair<int64_t, int64_t>(8, 128)));
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(1000, 750, 1024),
            (std::pair<int64_t, int64_t>(1024, 768)));
}

TEST(SamTransforms, BoxesAndIdentityAndErrors) {
  ResizeLongestSide tr(64);
  auto boxes = torch::tensor({{0.0, 0.0, 31.0, 15.0}}, torch::kDouble);
  auto b = tr.apply_boxes(boxes, {16, 32});
  EXPECT_TRUE(torch::allclose(b, torch::tensor({{0.0, 0.0, 62.0, 30.0}}, torch::kDouble)));
  // Same size: a copy, not the input (inputs are never mutated or aliased).
  auto img = torch::randint(0, 256, {64, 40, 3}, torch::kUInt8);
  auto same = pil_resize_bilinear(img, 64, 40);
  EXPECT_TRUE(torch::equal(same, img));
  EXPECT_NE(same.data_ptr(), img.data_ptr());
  // Constant images stay constant in both directions.
  auto flat = torch::full({13, 29, 3}, 200, torch::kUInt8);
  EXPECT_TRUE(
      torch::equal(pil_resize_bilinear(flat, 7, 11), torch::full({7, 11, 3}, 200, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(pil_resize_bilinear(flat, 40, 90),
                           torch::full({40, 90, 3}, 200, torch::kUInt8)));
  EXPECT_THROW(pil_resize_bilinear(img.to(torch::kFloat), 10, 10), c10::Error);
  EXPECT_THROW(pil_resize_bilinear(img, 0, 10), c10::Error);
}

}  // namespace
}  // namespace samdeblur::sam
