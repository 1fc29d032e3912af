// samdeblur::sam amg utilities against the official segment_anything/utils/amg.py
// (and torchvision NMS semantics). Fixtures: scripts/make_amg_fixtures.py; regenerate with
//   PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 scripts/make_amg_fixtures.py
#include "samdeblur/sam/amg.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::sam;
using nlohmann::json;

namespace {

const std::string kDir = test::data_path("sam/amg/");
constexpr int kFixtureVersion = 1;

const json& fixture() {
  static const json j = [] {
    std::ifstream meta(kDir + "meta.json"), in(kDir + "utils.json");
    if (!meta || !in) {
      ADD_FAILURE()
          << "missing " << kDir << "{meta,utils}.json; regenerate with "
          << "PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 scripts/make_amg_fixtures.py";
      return json::object();
    }
    const json m = json::parse(meta);
    EXPECT_EQ(m.value("fixture_version", 0), kFixtureVersion)
        << "fixture version mismatch; regenerate with scripts/make_amg_fixtures.py";
    return json::parse(in);
  }();
  return j;
}

torch::Tensor input(const std::string& key) {
  return io::read_npz_array(kDir + "utils_inputs.npz", key);
}

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  const auto c = t.to(torch::kInt64).contiguous().flatten();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

}  // namespace

TEST(Amg, PointGridsMatchOfficialExactly) {
  const auto& j = fixture().at("point_grids");
  ASSERT_FALSE(j.empty());
  for (const auto& [n, expected] : j.items()) {
    const auto grid = build_point_grid(std::stoll(n));
    ASSERT_EQ(grid.size(0), static_cast<int64_t>(expected.size())) << "n = " << n;
    const auto g = grid.accessor<double, 2>();
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(g[i][0], expected[i][0].get<double>()) << "n = " << n << " point " << i;
      EXPECT_EQ(g[i][1], expected[i][1].get<double>()) << "n = " << n << " point " << i;
    }
  }
  for (const auto& c : fixture().at("layer_grids")) {
    const auto grids = build_all_layer_point_grids(c["n"], c["layers"], c["scale"]);
    std::vector<int64_t> sizes;
    for (const auto& g : grids) sizes.push_back(g.size(0));
    EXPECT_EQ(sizes, c["sizes"].get<std::vector<int64_t>>()) << c.dump();
  }
  EXPECT_THROW(build_point_grid(0), c10::Error);
}

TEST(Amg, CropBoxesMatchOfficial) {
  for (const auto& c : fixture().at("crop_boxes")) {
    const auto crops = generate_crop_boxes(c["h"], c["w"], c["layers"], c["ratio"].get<double>());
    std::vector<std::vector<int64_t>> boxes;
    for (const auto& b : crops.boxes) boxes.push_back({b.begin(), b.end()});
    EXPECT_EQ(boxes, c["boxes"].get<std::vector<std::vector<int64_t>>>())
        << c["h"] << "x" << c["w"];
    EXPECT_EQ(crops.layer_idxs, c["layer_idxs"].get<std::vector<int64_t>>());
  }
}

TEST(Amg, StabilityScoreMatchesOfficial) {
  const auto logits = input("stability_logits");  // (3, 2, 17, 23) float32
  for (const auto& c : fixture().at("stability")) {
    const auto s = calculate_stability_score(logits, c["thr"], c["off"]);
    ASSERT_EQ(s.sizes(), torch::IntArrayRef({3, 2}));
    EXPECT_EQ(s.scalar_type(), torch::kFloat32);
    const auto expected = c["scores"].get<std::vector<float>>();
    const auto flat = s.flatten();
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_FLOAT_EQ(flat[i].item<float>(), expected[i]);
  }
  // The int16 partial sums wrap like torch's for rows wider than 32767.
  auto wide = torch::ones({1, 1, 40000});
  EXPECT_EQ(calculate_stability_score(wide, 0.0, 0.5).item<float>(), 1.0f);
}

TEST(Amg, MaskToBoxMatchesOfficial) {
  const auto masks = input("box_masks");  // (6, 9, 11) bool
  const auto boxes = batched_mask_to_box(masks);
  EXPECT_EQ(boxes.scalar_type(), torch::kInt64);
  EXPECT_EQ(
      to_vec(boxes), fixture().at("mask_boxes").get<std::vector<std::vector<int64_t>>>().empty()
                         ? std::vector<int64_t>{}
                         : [&] {
                             std::vector<int64_t> v;
                             for (const auto& b : fixture().at("mask_boxes"))
                               for (const auto& x : b) v.push_back(x);
                             return v;
                           }());
  // Shapes: (..., H, W) -> (..., 4), empty input.
  EXPECT_EQ(batched_mask_to_box(masks.reshape({2, 3, 9, 11})).sizes(),
            torch::IntArrayRef({2, 3, 4}));
  EXPECT_EQ(batched_mask_to_box(masks[0]).sizes(), torch::IntArrayRef({4}));
  EXPECT_EQ(batched_mask_to_box(torch::zeros({0, 5, 5}, torch::kBool)).sizes(),
            torch::IntArrayRef({0, 4}));
}

TEST(Amg, RleRoundTripAndOfficialCounts) {
  const auto masks = input("rle_masks");  // (7, 5, 8) bool
  const auto rles = mask_to_rle(masks);
  const auto& expected = fixture().at("rles");
  ASSERT_EQ(rles.size(), expected.size());
  for (size_t i = 0; i < rles.size(); ++i) {
    EXPECT_EQ(rles[i].h, expected[i]["size"][0]);
    EXPECT_EQ(rles[i].w, expected[i]["size"][1]);
    EXPECT_EQ(rles[i].counts, expected[i]["counts"].get<std::vector<int64_t>>()) << "mask " << i;
    EXPECT_EQ(area_from_rle(rles[i]), expected[i]["area"].get<int64_t>());
    EXPECT_TRUE(torch::equal(rle_to_mask(rles[i]), masks[i])) << "mask " << i;
    const auto coco = coco_encode_rle(rles[i]);
    EXPECT_EQ(coco.counts, expected[i]["coco"].get<std::string>()) << "mask " << i;
    EXPECT_EQ(coco_decode_rle(coco), rles[i]);
  }
  Rle bad{2, 2, {1, 1}};
  EXPECT_THROW(rle_to_mask(bad), Error);
}

TEST(Amg, CocoStringsKnownExamples) {
  for (const char* key : {"coco_known", "coco_extra"})
    for (const auto& c : fixture().at(key)) {
      Rle r{1, 1, c["counts"].get<std::vector<int64_t>>()};
      EXPECT_EQ(coco_encode_rle(r).counts, c["coco"].get<std::string>()) << c.dump();
      EXPECT_EQ(coco_decode_rle(coco_encode_rle(r)).counts, r.counts);
    }
  // Hand-computed from maskApi.c rleToString.
  EXPECT_EQ(coco_encode_rle({1, 1, {100}}).counts, "T3");
  EXPECT_EQ(coco_encode_rle({1, 1, {5, 10, 3, 2}}).counts, "5:3H");
  EXPECT_THROW(coco_decode_rle({1, 1, "T"}), Error);
}

TEST(Amg, RemoveSmallRegionsMatchesOfficial) {
  for (const auto& c : fixture().at("regions")) {
    const auto mask = input(c["input"].get<std::string>());
    const auto mode = c["mode"] == "holes" ? RegionMode::holes : RegionMode::islands;
    const auto [out, changed] = remove_small_regions(mask, c["thr"].get<double>(), mode);
    EXPECT_EQ(changed, c["changed"].get<bool>())
        << c["input"] << " " << c["thr"] << " " << c["mode"];
    std::vector<int64_t> expected;
    for (const auto& row : c["mask"])
      for (const auto& v : row) expected.push_back(v);
    EXPECT_EQ(to_vec(out), expected) << c["input"] << " " << c["thr"] << " " << c["mode"];
  }
}

TEST(Amg, NmsMatchesTorchvisionSemantics) {
  for (const auto& c : fixture().at("nms")) {
    const std::string name = c["input"];
    const auto boxes = input(name + "_boxes"), scores = input(name + "_scores");
    auto idxs = input(name + "_idxs");
    if (!c["categories"].get<bool>()) idxs = torch::zeros_like(idxs);
    const auto keep = batched_nms(boxes, scores, idxs, c["thr"].get<double>());
    EXPECT_EQ(keep.scalar_type(), torch::kInt64);
    EXPECT_EQ(to_vec(keep), c["keep"].get<std::vector<int64_t>>()) << name << " thr " << c["thr"];
  }
  EXPECT_EQ(nms(torch::zeros({0, 4}), torch::zeros({0}), 0.5).numel(), 0);
}

TEST(Amg, EdgesAndUncropMatchOfficial) {
  const auto boxes = input("near_boxes");
  for (const auto& c : fixture().at("near_edge")) {
    const auto crop = c["crop"].get<Box>(), orig = c["orig"].get<Box>();
    std::vector<int64_t> expected;
    for (const auto& v : c["near"]) expected.push_back(v.get<bool>());
    EXPECT_EQ(to_vec(is_box_near_crop_edge(boxes, crop, orig)), expected) << c.dump();
  }
  std::vector<int64_t> expected;
  for (const auto& b : fixture().at("uncrop_boxes"))
    for (const auto& v : b) expected.push_back(v);
  EXPECT_EQ(to_vec(uncrop_boxes_xyxy(boxes, {7, 11, 50, 60})), expected);
  const auto masks = input("box_masks").slice(0, 0, 2).slice(1, 0, 4).slice(2, 0, 5);
  expected.clear();
  for (const auto& m : fixture().at("uncrop_masks"))
    for (const auto& r : m)
      for (const auto& v : r) expected.push_back(v);
  EXPECT_EQ(to_vec(uncrop_masks(masks, {3, 2, 8, 6}, 9, 12)), expected);
  const auto pts = torch::tensor({{0.5, 1.5}}, torch::kFloat64);
  const auto up = uncrop_points(pts, {10, 20, 30, 40});
  EXPECT_EQ(up.scalar_type(), torch::kFloat64);
  EXPECT_DOUBLE_EQ(up[0][0].item<double>(), 10.5);
  EXPECT_DOUBLE_EQ(up[0][1].item<double>(), 21.5);
  EXPECT_EQ(box_xyxy_to_xywh({1, 2, 5, 9}), (Box{1, 2, 4, 7}));
}
