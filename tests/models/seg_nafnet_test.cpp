// SegMasks, the MAP unit (label-map and dense paths) and SegNAFNet(Local) against
// the official SegNAFNet_arch.py.
#include "samdeblur/models/seg_nafnet.h"

#include <gtest/gtest.h>

#include "model_fixtures.h"
#include "samdeblur/models/map_unit.h"
#include "samdeblur/models/network.h"
#include "support/tiny_networks.h"

namespace sm = samdeblur::models;
using samdeblur::test::tiny_network_options;
using sm::testing::build_with_fixture;
using sm::testing::expect_close;
using sm::testing::load_fixture;

namespace {

constexpr double kOfficialValue = 1.0 / 255.0;

// Random label map (H, W) in [-1, m): -1 with probability `uncovered`.
torch::Tensor random_labels(int64_t h, int64_t w, int64_t m, double uncovered) {
  auto labels = torch::randint(0, std::max<int64_t>(m, 1), {h, w}, torch::kLong);
  if (m == 0) labels.fill_(-1);
  labels.masked_fill_(torch::rand({h, w}) < uncovered, -1);
  return labels;
}

// (M, 1, H, W) bool masks of a label map.
torch::Tensor one_hot_masks(const torch::Tensor& labels, int64_t m) {
  const auto ids = torch::arange(m, torch::kLong).view({m, 1, 1});
  return labels.unsqueeze(0).eq(ids).unsqueeze(1);
}

// The official mask_average, literally (dense (M, H, W, C) broadcasting).
torch::Tensor official_mask_average(const torch::Tensor& image, const torch::Tensor& masks) {
  auto img = image.permute({1, 2, 0}).unsqueeze(0);
  auto m = masks.squeeze(1).unsqueeze(-1);
  auto areas = m.sum({1, 2}, true);
  auto sums = (img * m).sum({1, 2}, true);
  auto avg = sums / (areas + 1e-8);
  auto result = (avg * m).sum(0);
  auto remaining = 1 - m.sum(0, true).clamp(0, 1);
  auto rem_avg = (img * remaining).sum({1, 2}, true) / (remaining.sum() + 1e-8);
  result = result + (rem_avg * remaining).squeeze(0);
  return result.permute({2, 0, 1});
}

std::vector<sm::SegMasks> fixture_masks(const std::map<std::string, torch::Tensor>& data,
                                        double value) {
  return {sm::SegMasks::from_masks(data.at("masks0"), value),
          sm::SegMasks::from_masks(data.at("masks1"), value)};
}

}  // namespace

TEST(SegMasks, FromMasksChoosesLabelsForPartitionsAndDenseForOverlaps) {
  auto labels = torch::tensor({{0, 0, 1}, {-1, 2, 2}}, torch::kLong);
  auto masks = one_hot_masks(labels, 3);
  // An all-zero mask in the middle is removed (remove_zero_slices).
  masks = torch::cat(
      {masks.slice(0, 0, 1), torch::zeros_like(masks.slice(0, 0, 1)), masks.slice(0, 1, 3)});
  const auto input_copy = masks.clone();
  auto s = sm::SegMasks::from_masks(masks, kOfficialValue);
  EXPECT_TRUE(torch::equal(masks, input_copy));
  ASSERT_TRUE(s.labels.defined());
  EXPECT_FALSE(s.dense.defined());
  EXPECT_EQ(s.num_masks, 3);
  EXPECT_TRUE(torch::equal(s.labels, labels));
  EXPECT_EQ(s.height(), 2);
  EXPECT_EQ(s.width(), 3);
  EXPECT_DOUBLE_EQ(s.value, kOfficialValue);
  // (M, H, W) float input with official values 1/255 works too.
  auto s2 =
      sm::SegMasks::from_masks(one_hot_masks(labels, 3).squeeze(1).to(torch::kFloat) / 255, 1.0);
  EXPECT_TRUE(torch::equal(s2.labels, labels));

  auto overlapping = one_hot_masks(labels, 3);
  overlapping[0][0][1][1] = true;  // pixel (1, 1) in masks 0 and 2
  auto d = sm::SegMasks::from_masks(overlapping, 1.0);
  ASSERT_TRUE(d.dense.defined());
  EXPECT_FALSE(d.labels.defined());
  EXPECT_EQ(d.dense.sizes(), (std::vector<int64_t>{3, 1, 2, 3}));
  EXPECT_EQ(d.num_masks, 3);

  auto none = sm::SegMasks::from_masks(torch::zeros({2, 1, 4, 5}), 1.0);
  EXPECT_EQ(none.num_masks, 0);
  EXPECT_EQ(none.labels.eq(-1).all().item<bool>(), true);
  EXPECT_THROW(sm::SegMasks::from_masks(torch::zeros({2, 2, 4, 5}), 1.0), c10::Error);
}

TEST(SegMasks, FromLabelsRenumbersEmptyMasksAway) {
  auto labels = torch::tensor({{4, 4, 1}, {-1, 1, 4}}, torch::kInt);
  auto s = sm::SegMasks::from_labels(labels, 6, 1.0);
  EXPECT_EQ(s.num_masks, 2);
  EXPECT_TRUE(torch::equal(s.labels, torch::tensor({{1, 1, 0}, {-1, 0, 1}}, torch::kLong)));
  EXPECT_THROW(sm::SegMasks::from_labels(labels, 4, 1.0), c10::Error);  // 4 out of range
  EXPECT_THROW(sm::SegMasks::from_labels(labels.to(torch::kFloat), 6, 1.0), c10::Error);
  auto moved = s.to(torch::kCPU);
  EXPECT_TRUE(torch::equal(moved.labels, s.labels));
}

TEST(MapUnit, LabelPathEqualsDensePathAndTheOfficialFormula) {
  torch::manual_seed(7);
  for (double value : {1.0, kOfficialValue}) {
    for (double uncovered : {0.0, 0.2, 1.0}) {
      for (int64_t m : {0, 1, 6}) {
        SCOPED_TRACE("value " + std::to_string(value) + " uncovered " + std::to_string(uncovered) +
                     " M " + std::to_string(m));
        const auto labels = random_labels(13, 17, m, uncovered);
        const auto x = torch::randn({3, 13, 17}, torch::kDouble);
        const auto by_labels = sm::mask_average_labels(x, labels, m, value);
        const auto onehot = one_hot_masks(labels, m);
        const auto dense = onehot.to(torch::kFloat);
        const auto by_dense = sm::mask_average_dense(x, dense, value);
        const auto official = official_mask_average(x, dense.to(torch::kDouble) * value);
        expect_close(by_labels, official, 1e-9, "labels vs official");
        expect_close(by_dense, official, 1e-9, "dense vs official");
      }
    }
  }
}

TEST(MapUnit, LabelAndDenseGradientsAgree) {
  torch::manual_seed(8);
  const auto labels = random_labels(9, 11, 4, 0.3);
  const auto dense = one_hot_masks(labels, 4).to(torch::kFloat);
  const auto g = torch::randn({2, 9, 11}, torch::kDouble);
  auto grad_of = [&](bool use_labels) {
    auto x = torch::randn({2, 9, 11}, torch::kDouble);
    torch::manual_seed(9);
    x = torch::randn({2, 9, 11}, torch::kDouble).requires_grad_(true);
    auto y = use_labels ? sm::mask_average_labels(x, labels, 4, kOfficialValue)
                        : sm::mask_average_dense(x, dense, kOfficialValue);
    (y * g).sum().backward();
    return x.grad();
  };
  const auto gl = grad_of(true), gd = grad_of(false);
  EXPECT_TRUE(torch::isfinite(gl).all().item<bool>());
  expect_close(gl, gd, 1e-10, "grad labels vs dense");
}

TEST(MapUnit, DropoutRemovesFloorPTimesMMasks) {
  const auto labels = random_labels(16, 16, 7, 0.1);
  auto s = sm::SegMasks::from_labels(labels, 7, 1.0);
  ASSERT_EQ(s.num_masks, 7);
  const auto labels_copy = s.labels.clone();
  for (double p : {0.0, 0.3, 0.5, 1.0}) {
    const auto want = static_cast<int64_t>(p * 7);  // 0, 2, 3, 7
    torch::manual_seed(42);
    const auto dropped = sm::drop_masks(s, p);
    const auto kept = std::get<0>(torch::_unique(dropped.labels.flatten()));
    EXPECT_EQ(kept.ge(0).sum().item<int64_t>(), 7 - want) << "p " << p;
    EXPECT_EQ(dropped.num_masks, 7);
    // Reproducible from the global generator.
    torch::manual_seed(42);
    EXPECT_TRUE(torch::equal(sm::drop_masks(s, p).labels, dropped.labels));
    // The same masks are dropped on the dense path.
    torch::manual_seed(42);
    const auto dense = sm::drop_masks(
        sm::SegMasks{torch::Tensor(), one_hot_masks(labels, 7).to(torch::kFloat), 7, 1.0}, p);
    const auto nonzero = dense.dense.flatten(1).sum(1).gt(0).sum().item<int64_t>();
    EXPECT_EQ(nonzero, 7 - want);
    EXPECT_TRUE(torch::equal(
        dense.dense.squeeze(1).argmax(0).masked_fill(dense.dense.squeeze(1).sum(0) == 0, -1),
        dropped.labels));
  }
  EXPECT_TRUE(torch::equal(s.labels, labels_copy)) << "caller's masks mutated";
}

namespace {

sm::DeblurNet load_seg(const std::string& fixture, sm::NetworkOptions options,
                       std::map<std::string, torch::Tensor>& data) {
  data = load_fixture(fixture + ".npz");
  return build_with_fixture(std::move(options), data);
}

// MAP features as `intro` sees them (the channels after the image).
torch::Tensor seg_of(sm::DeblurNet& net, const torch::Tensor& input,
                     const std::vector<sm::SegMasks>& masks) {
  auto* seg = dynamic_cast<sm::SegNAFNetImpl*>(net.get());
  const auto padded = sm::pad_to_multiple(input, seg->body().padder_size());
  return seg->seg_features(padded, masks);
}

}  // namespace

TEST(SegNAFNetParity, EvalMatchesOfficialOutputsAndGradients) {
  std::map<std::string, torch::Tensor> data;
  auto net = load_seg("segnafnet", tiny_network_options("SegNAFNet"), data);
  net->eval();
  const auto masks = fixture_masks(data, kOfficialValue);
  EXPECT_TRUE(masks[0].labels.defined());  // partition with an uncovered rectangle
  EXPECT_TRUE(masks[1].dense.defined());   // overlapping masks
  const auto input = data.at("input").clone().requires_grad_(true);
  const auto out = net->forward(input, masks);
  expect_close(out, data.at("output"), 1e-4, "output");
  (out * data.at("loss_weight")).sum().backward();
  expect_close(input.grad(), data.at("g.input"), 1e-4, "grad input");
  for (const auto& p : net->named_parameters()) {
    const auto& want = data.at("g." + p.key());
    const double scale = std::max(1.0, want.abs().max().item<double>());
    expect_close(p.value().grad(), want, 1e-4 * scale, "grad " + p.key());
  }
  torch::NoGradGuard no_grad;
  expect_close(seg_of(net, data.at("input"), masks), data.at("seg"), 1e-6, "seg features");
  // The clean value 1 (masks not divided by 255).
  const auto masks_v1 = fixture_masks(data, 1.0);
  expect_close(net->forward(data.at("input"), masks_v1), data.at("output_v1"), 1e-4, "output v1");
  expect_close(seg_of(net, data.at("input"), masks_v1), data.at("seg_v1"), 1e-5, "seg v1");
}

TEST(SegNAFNetParity, TrainingDropoutDrawsTheOfficialPermutations) {
  std::map<std::string, torch::Tensor> data;
  auto net = load_seg("segnafnet", tiny_network_options("SegNAFNet"), data);
  net->train();
  const int64_t seed = data.at("train_seed").item<int64_t>();
  torch::NoGradGuard no_grad;
  for (const auto& [value, suffix] :
       {std::pair{kOfficialValue, std::string()}, std::pair{1.0, std::string("_v1")}}) {
    const auto masks = fixture_masks(data, value);
    torch::manual_seed(seed);
    const auto out = net->forward(data.at("input"), masks);
    expect_close(out, data.at("output_train" + suffix), 1e-4, "train output" + suffix);
    torch::manual_seed(seed);
    expect_close(seg_of(net, data.at("input"), masks), data.at("seg_train" + suffix), 1e-5,
                 "train seg" + suffix);
  }
}

TEST(SegNAFNetParity, LocalMatchesOfficial) {
  std::map<std::string, torch::Tensor> data;
  auto net = load_seg("segnafnet_local", tiny_network_options("SegNAFNetLocal"), data);
  EXPECT_FALSE(net->is_training());
  c10::InferenceMode guard;
  const auto out = net->forward(data.at("input"), fixture_masks(data, kOfficialValue));
  expect_close(out, data.at("output"), 1e-4, "local output");
}

TEST(SegNAFNet, EvalIsDeterministicAndInputsAreNotMutated) {
  torch::manual_seed(3);
  auto o = tiny_network_options("SegNAFNet");
  o.mask_dropout = 0.5;
  auto net = sm::build_network(o);
  {
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) p.uniform_(-0.3, 0.3);
  }
  const auto input = torch::rand({2, 3, 11, 13});
  std::vector<sm::SegMasks> masks = {
      sm::SegMasks::from_labels(random_labels(11, 13, 6, 0.1), 6, 1.0),
      sm::SegMasks::from_masks(one_hot_masks(random_labels(11, 13, 4, 0.0), 4), 1.0)};
  const auto input_copy = input.clone();
  const auto labels_copy = masks[0].labels.clone();
  const auto dense_labels_copy = masks[1].labels.clone();
  torch::NoGradGuard no_grad;
  net->eval();
  const auto a = net->forward(input, masks);
  torch::manual_seed(99);
  const auto b = net->forward(input, masks);
  EXPECT_TRUE(torch::equal(a, b)) << "eval must not drop masks";
  // Eval equals training with p = 0 (nothing dropped).
  net->train();
  const auto t1 = net->forward(input, masks);
  const auto t2 = net->forward(input, masks);
  EXPECT_GT((t1 - a).abs().max().item<double>(), 0.0) << "training should drop masks";
  EXPECT_GT((t1 - t2).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(input, input_copy));
  EXPECT_TRUE(torch::equal(masks[0].labels, labels_copy));
  EXPECT_TRUE(torch::equal(masks[1].labels, dense_labels_copy));
}

TEST(SegNAFNet, GradientsReachPreSegInTraining) {
  torch::manual_seed(4);
  auto net = sm::build_network(tiny_network_options("SegNAFNet"));
  {
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) p.uniform_(-0.3, 0.3);
  }
  net->train();
  const auto input = torch::rand({1, 3, 10, 7}, torch::requires_grad());
  std::vector<sm::SegMasks> masks = {
      sm::SegMasks::from_labels(random_labels(10, 7, 5, 0.2), 5, 1.0)};
  net->forward(input, masks).pow(2).mean().backward();
  auto* seg = dynamic_cast<sm::SegNAFNetImpl*>(net.get());
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
  EXPECT_GT(seg->pre_seg->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(SegNAFNet, RejectsMismatchedMasks) {
  auto net = sm::build_network(tiny_network_options("SegNAFNet"));
  const auto input = torch::rand({2, 3, 8, 8});
  const auto m = sm::SegMasks::from_labels(random_labels(8, 8, 2, 0.0), 2, 1.0);
  EXPECT_THROW(net->forward(input, {m}), c10::Error);  // one SegMasks for two images
  const auto wrong = sm::SegMasks::from_labels(random_labels(8, 9, 2, 0.0), 2, 1.0);
  EXPECT_THROW(net->forward(input, {m, wrong}), c10::Error);
  EXPECT_NO_THROW(net->forward(input, {m, m}));
}
