// MaskGenerator against the official SamAutomaticMaskGenerator.generate():
//  * with FakePredictor, an analytic stand-in for SAM implemented op for op like
//    FakePredictor in scripts/make_amg_fixtures.py (all crops, NMS, filters,
//    small-region post-processing and output modes are exercised);
//  * with the tiny random-weight SAM of tests/data/sam/model (the real predictor).
// Masks are compared by count, order and IoU (style guide), scalars with tolerances.
// Regenerate: PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 scripts/make_amg_fixtures.py
#include "samdeblur/sam/mask_generator.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "samdeblur/core/error.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::sam;
using nlohmann::json;

namespace {

const std::string kHint =
    "regenerate with PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 "
    "scripts/make_amg_fixtures.py";

json load(const std::string& name) { return test::load_json_fixture("sam/amg/" + name, kHint); }

// See FakePredictor in scripts/make_amg_fixtures.py for the formulas.
class FakePredictor : public Predictor {
 public:
  FakePredictor() { cfg_.image_size = 1024; }
  void set_image(const cv::Mat& image) override {
    ASSERT_EQ(image.type(), CV_8UC3);
    h_ = image.rows;
    w_ = image.cols;
    calls.push_back({h_, w_});
    cv::Mat ch0;
    cv::extractChannel(image, ch0, 0);
    img_ = torch::from_blob(ch0.data, {h_, w_}, torch::kUInt8).to(torch::kFloat64);
    const double scale = 1024.0 * 1.0 / static_cast<double>(std::max(h_, w_));
    nh_ = static_cast<int64_t>(static_cast<double>(h_) * scale + 0.5);
    nw_ = static_cast<int64_t>(static_cast<double>(w_) * scale + 0.5);
  }
  PointPrediction predict_torch(const torch::Tensor& coords, const torch::Tensor& labels,
                                bool multimask) override {
    EXPECT_EQ(coords.scalar_type(), torch::kFloat64);
    EXPECT_TRUE(multimask);
    EXPECT_EQ(labels.sizes(), torch::IntArrayRef({coords.size(0), 1}));
    const int64_t b = coords.size(0);
    const auto px = coords.select(2, 0).select(1, 0).reshape({b, 1, 1});
    const auto py = coords.select(2, 1).select(1, 0).reshape({b, 1, 1});
    const auto f64 = torch::kFloat64;
    const auto gx =
        ((torch::arange(w_, f64) + 0.5) * (static_cast<double>(nw_) / static_cast<double>(w_)))
            .reshape({1, 1, -1});
    const auto gy =
        ((torch::arange(h_, f64) + 0.5) * (static_cast<double>(nh_) / static_cast<double>(h_)))
            .reshape({1, -1, 1});
    const auto d = torch::maximum((gx - px).abs(), (gy - py).abs());
    const auto img = (img_ / 255.0 - 0.5) * 2.0;
    const double sizes[] = {40.0, 90.0, 160.0}, slopes[] = {0.5, 0.05, 1.0};
    std::vector<torch::Tensor> out;
    for (int c = 0; c < 3; ++c) {
      auto logit = (sizes[c] - d) * slopes[c] + img;
      if (c == 1) {
        const auto hole = torch::maximum((gx - px - 20.0).abs(), (gy - py - 20.0).abs()) < 6.0;
        logit = torch::where(hole, torch::full_like(logit, -5.0), logit);
      }
      if (c == 2) {
        const auto isl = torch::maximum((gx - px - 400.0).abs(), (gy - py).abs()) < 8.0;
        logit = torch::where(isl, torch::full_like(logit, 5.0), logit);
      }
      out.push_back(logit);
    }
    PointPrediction p;
    p.masks = torch::stack(out, 1).to(torch::kFloat32);
    const auto t = px.reshape({b, 1}) * 0.013 + py.reshape({b, 1}) * 0.007;
    const auto frac = t - t.floor();
    p.iou = (torch::tensor({0.7, 0.8, 0.9}, f64).unsqueeze(0) + frac * 0.1).to(torch::kFloat32);
    return p;
  }
  torch::Tensor apply_coords(const torch::Tensor& c) const override { return c; }
  torch::Tensor image_embedding() const override { return torch::full({1, 256, 64, 64}, 7.0); }
  cv::Size original_size() const override { return {static_cast<int>(w_), static_cast<int>(h_)}; }
  cv::Size input_size() const override { return {static_cast<int>(nw_), static_cast<int>(nh_)}; }
  const SamConfig& config() const override { return cfg_; }
  torch::Device device() const override { return torch::kCPU; }
  double mask_threshold() const override { return 0.0; }

  std::vector<std::vector<int64_t>> calls;

 private:
  SamConfig cfg_;
  int64_t h_ = 0, w_ = 0, nh_ = 0, nw_ = 0;
  torch::Tensor img_;
};

using test::ramp_image;

MaskGeneratorOptions options_from(const json& o) {
  MaskGeneratorOptions opt;
  if (o.contains("points_per_side")) {
    if (o["points_per_side"].is_null())
      opt.points_per_side.reset();
    else
      opt.points_per_side = o["points_per_side"].get<int64_t>();
  }
  if (o.contains("point_grids") && !o["point_grids"].is_null())
    for (const auto& g : o["point_grids"]) {
      std::vector<double> flat;
      for (const auto& p : g) flat.insert(flat.end(), {p[0].get<double>(), p[1].get<double>()});
      opt.point_grids.push_back(torch::tensor(flat, torch::kFloat64).reshape({-1, 2}));
    }
  opt.points_per_batch = o.value("points_per_batch", opt.points_per_batch);
  opt.pred_iou_thresh = o.value("pred_iou_thresh", opt.pred_iou_thresh);
  opt.stability_score_thresh = o.value("stability_score_thresh", opt.stability_score_thresh);
  opt.stability_score_offset = o.value("stability_score_offset", opt.stability_score_offset);
  opt.box_nms_thresh = o.value("box_nms_thresh", opt.box_nms_thresh);
  opt.crop_n_layers = o.value("crop_n_layers", opt.crop_n_layers);
  opt.crop_nms_thresh = o.value("crop_nms_thresh", opt.crop_nms_thresh);
  opt.crop_overlap_ratio = o.value("crop_overlap_ratio", opt.crop_overlap_ratio);
  opt.crop_n_points_downscale_factor =
      o.value("crop_n_points_downscale_factor", opt.crop_n_points_downscale_factor);
  opt.min_mask_region_area = o.value("min_mask_region_area", opt.min_mask_region_area);
  opt.output_mode = output_mode_from_name(o.value("output_mode", std::string("binary_mask")));
  return opt;
}

double mask_iou(const torch::Tensor& a, const torch::Tensor& b) {
  const double inter = (a & b).sum().item<double>(), uni = (a | b).sum().item<double>();
  return uni == 0 ? 1.0 : inter / uni;
}

// Compares records by count, order and IoU; returns the number of bit-exact masks.
int compare_records(const std::vector<MaskRecord>& got, const json& expected, OutputMode mode,
                    double min_iou, double atol, const std::string& name) {
  EXPECT_EQ(got.size(), expected.size()) << name << ": mask count";
  int exact = 0;
  double worst = 1.0;
  const size_t n = std::min(got.size(), expected.size());
  for (size_t i = 0; i < n; ++i) {
    const auto& e = expected[i];
    const auto& r = got[i];
    const auto& seg = e["segmentation"];
    Rle erle;
    if (seg["counts"].is_string())
      erle = coco_decode_rle({seg["size"][0], seg["size"][1], seg["counts"].get<std::string>()});
    else
      erle = {seg["size"][0], seg["size"][1], seg["counts"].get<std::vector<int64_t>>()};
    const double iou = mask_iou(rle_to_mask(r.rle), rle_to_mask(erle));
    worst = std::min(worst, iou);
    exact += r.rle == erle;
    EXPECT_GE(iou, min_iou) << name << " mask " << i;
    if (mode == OutputMode::coco_rle && iou == 1.0) {
      EXPECT_EQ(r.coco.counts, seg["counts"].get<std::string>());
    }
    if (mode == OutputMode::binary_mask) {
      EXPECT_TRUE(torch::equal(r.binary_mask, rle_to_mask(r.rle)));
    }
    EXPECT_NEAR(r.area, e["area"].get<double>(), atol * r.area + (iou < 1 ? 1e9 : 0))
        << name << " mask " << i;
    EXPECT_EQ(r.crop_box, e["crop_box"].get<Box>()) << name << " mask " << i;
    if (iou == 1.0) {
      EXPECT_EQ(r.bbox, e["bbox"].get<Box>()) << name << " mask " << i;
    }
    EXPECT_NEAR(r.predicted_iou, e["predicted_iou"].get<double>(), atol) << name << " mask " << i;
    EXPECT_NEAR(r.stability_score, e["stability_score"].get<double>(), atol)
        << name << " mask " << i;
    EXPECT_EQ(r.point_coords.size(), 1u);
    if (r.point_coords.size() != 1) continue;
    EXPECT_NEAR(r.point_coords[0][0], e["point_coords"][0][0].get<double>(), 1e-9)
        << name << " mask " << i;
    EXPECT_NEAR(r.point_coords[0][1], e["point_coords"][0][1].get<double>(), 1e-9)
        << name << " mask " << i;
  }
  std::cout << name << ": " << got.size() << " masks, " << exact << " bit-exact, worst IoU "
            << worst << std::endl;
  return exact;
}

}  // namespace

TEST(MaskGenerator, MatchesOfficialGeneratorWithFakePredictor) {
  const json cases = load("generator.json");
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string name = c["name"];
    FakePredictor fake;
    auto opts = options_from(c["options"]);
    MaskGenerator gen(fake, opts);
    const auto result = gen.generate(ramp_image(c["h"], c["w"]), /*keep_embedding=*/true);
    EXPECT_EQ(fake.calls, c["set_image_calls"].get<std::vector<std::vector<int64_t>>>()) << name;
    EXPECT_EQ(result.crops, static_cast<int64_t>(c["set_image_calls"].size()));
    ASSERT_TRUE(result.image_embedding.defined());
    EXPECT_GE(result.times.encoder, 0.0);
    EXPECT_GT(result.times.total(), 0.0);
    // Deterministic analytic predictor: the masks must be identical, not only close.
    const int exact =
        compare_records(result.masks, c["records"], opts.output_mode, 1.0, 1e-6, name);
    EXPECT_EQ(exact, static_cast<int>(c["records"].size())) << name;
    // JSON record has the official keys.
    if (!result.masks.empty()) {
      const auto j = result.masks[0].to_json(opts.output_mode);
      for (const char* k : {"segmentation", "area", "bbox", "predicted_iou", "point_coords",
                            "stability_score", "crop_box"})
        EXPECT_TRUE(j.contains(k)) << k;
    }
  }
}

TEST(MaskGenerator, BinaryMaskModeAndBatchSizeInvariance) {
  const cv::Mat img = ramp_image(40, 56);
  MaskGeneratorOptions o;
  o.points_per_side = 5;
  o.pred_iou_thresh = 0.75;
  o.stability_score_thresh = 0.5;
  std::vector<std::vector<Rle>> runs;
  for (int64_t batch : {1, 7, 64}) {
    o.points_per_batch = batch;
    FakePredictor fake;
    const auto r = MaskGenerator(fake, o).generate(img);
    ASSERT_FALSE(r.masks.empty());
    EXPECT_EQ(r.points, 25);
    std::vector<Rle> rles;
    for (const auto& m : r.masks) {
      EXPECT_EQ(m.binary_mask.sizes(), torch::IntArrayRef({40, 56}));
      EXPECT_EQ(m.binary_mask.sum().item<int64_t>(), m.area);
      rles.push_back(m.rle);
    }
    runs.push_back(rles);
  }
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(MaskGenerator, OptionsAreValidated) {
  FakePredictor fake;
  MaskGeneratorOptions o;
  o.point_grids = {build_point_grid(3)};  // and points_per_side = 32: both set
  EXPECT_THROW(MaskGenerator(fake, o), ConfigError);
  o.points_per_side.reset();
  o.crop_n_layers = 1;  // needs two grids
  EXPECT_THROW(MaskGenerator(fake, o), ConfigError);
  o = {};
  o.points_per_batch = 0;
  EXPECT_THROW(MaskGenerator(fake, o), ConfigError);
  EXPECT_THROW(output_mode_from_name("png"), ConfigError);
  MaskGenerator ok(fake, {});
  EXPECT_THROW(ok.generate(cv::Mat(4, 4, CV_8UC1, cv::Scalar(0))), Error);
}

TEST(MaskGenerator, MatchesOfficialGeneratorWithTinySam) {
  if (!fs::exists(test::data_path("sam/amg/tiny_generator.json")) ||
      !fs::exists(test::tiny_sam_checkpoint()))
    GTEST_SKIP()
        << "no tiny SAM fixture (tests/data/sam/model, tests/data/sam/amg/tiny_generator.json)";
  auto predictor =
      make_predictor(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
  for (const auto& c : load("tiny_generator.json")) {
    const auto opts = options_from(c["options"]);
    MaskGenerator gen(*predictor, opts);
    const auto result = gen.generate(ramp_image(c["h"], c["w"]));
    // Real network: float differences may move pixels near the threshold.
    compare_records(result.masks, c["records"], opts.output_mode, 0.98, 1e-4, c["name"]);
  }
}
