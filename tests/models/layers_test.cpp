// LayerNorm2d, SimpleGate, NAFBlock and the TLC local pooling.
#include "samdeblur/models/layers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "model_fixtures.h"
#include "samdeblur/models/local_pool.h"

namespace sm = samdeblur::models;
using sm::testing::expect_close;

TEST(LayerNorm2d, NormalisesEveryPixelOverChannels) {
  torch::manual_seed(0);
  sm::LayerNorm2d norm(5);
  const auto x = torch::randn({2, 5, 3, 4}) * 3 + 1;
  torch::NoGradGuard no_grad;
  norm->weight.uniform_(0.5, 1.5);
  norm->bias.uniform_(-1, 1);
  const auto y = norm(x);
  const auto mu = x.mean(1, true);
  const auto var = x.var(1, /*unbiased=*/false, true);
  const auto want = (x - mu) / (var + 1e-6).sqrt() * norm->weight.view({1, 5, 1, 1}) +
                    norm->bias.view({1, 5, 1, 1});
  expect_close(y, want, 1e-5, "layer norm");
  EXPECT_EQ(norm->named_parameters().size(), 2u);
  EXPECT_NE(norm->named_parameters().find("weight"), nullptr);
}

TEST(LayerNorm2d, CustomBackwardMatchesAutogradOfForward) {
  torch::manual_seed(1);
  const auto x0 = torch::randn({2, 6, 5, 3}, torch::kDouble);
  const auto w0 = torch::rand({6}, torch::kDouble) + 0.5;
  const auto b0 = torch::randn({6}, torch::kDouble);
  const auto g = torch::randn({2, 6, 5, 3}, torch::kDouble);
  auto grads = [&](bool custom) {
    auto x = x0.clone().requires_grad_(true);
    auto w = w0.clone().requires_grad_(true);
    auto b = b0.clone().requires_grad_(true);
    torch::Tensor y;
    if (custom) {
      y = sm::layer_norm_2d(x, w, b, 1e-6);
    } else {
      auto mu = x.mean(1, true);
      auto var = (x - mu).pow(2).mean(1, true);
      y = (x - mu) / (var + 1e-6).sqrt() * w.view({1, 6, 1, 1}) + b.view({1, 6, 1, 1});
    }
    (y * g).sum().backward();
    return std::vector<torch::Tensor>{x.grad(), w.grad(), b.grad()};
  };
  const auto custom = grads(true), plain = grads(false);
  expect_close(custom[0], plain[0], 1e-10, "grad x");
  expect_close(custom[1], plain[1], 1e-10, "grad weight");
  expect_close(custom[2], plain[2], 1e-10, "grad bias");
}

TEST(LayerNorm2d, RunsUnderInferenceMode) {
  sm::LayerNorm2d norm(4);
  c10::InferenceMode guard;
  const auto y = norm(torch::randn({1, 4, 2, 2}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 4, 2, 2}));
}

TEST(SimpleGate, MultipliesChannelHalves) {
  const auto x = torch::arange(16, torch::kFloat).view({1, 4, 2, 2});
  const auto y = sm::simple_gate(x);
  expect_close(y, x.slice(1, 0, 2) * x.slice(1, 2, 4), 0, "gate");
  EXPECT_THROW(sm::simple_gate(torch::zeros({1, 3, 2, 2})), c10::Error);
}

TEST(NAFBlock, KeysFollowTheReference) {
  sm::NAFBlock block(sm::NAFBlockOptions(4));
  std::set<std::string> keys;
  for (const auto& p : block->named_parameters()) keys.insert(p.key());
  const std::set<std::string> want = {
      "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias",
      "sca.1.weight", "sca.1.bias", "conv4.weight", "conv4.bias", "conv5.weight", "conv5.bias",
      "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "beta",         "gamma"};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(block->conv2->weight.sizes(), (std::vector<int64_t>{8, 1, 3, 3}));  // depthwise
  EXPECT_EQ(block->beta.sizes(), (std::vector<int64_t>{1, 4, 1, 1}));
  EXPECT_EQ(block->beta.abs().sum().item<double>(), 0.0);
  // Zero beta/gamma: the block starts as the identity.
  const auto x = torch::randn({1, 4, 5, 6});
  expect_close(block(x), x, 0, "identity at init");
}

// The reference block works in place without autograd: the same bits as with autograd
// (global and local pooling, non-zero beta / gamma so that both residuals count).
TEST(NAFBlock, InPlaceInferenceEqualsTheAutogradComposition) {
  torch::manual_seed(5);
  sm::LocalAvgPool2dOptions local;
  local.kernel_size = {6, 9};
  for (const bool tlc : {false, true}) {
    auto opts = sm::NAFBlockOptions(8);
    if (tlc) opts.local_pool(local);
    sm::NAFBlock block(opts);
    block->eval();
    {
      torch::NoGradGuard no_grad;
      block->beta.normal_();
      block->gamma.normal_();
    }
    const auto x = torch::randn({2, 8, 13, 17});
    const auto with_grad = block->forward(x.clone().requires_grad_()).detach();
    torch::InferenceMode guard;
    const auto in_place = block->forward(x);
    EXPECT_TRUE(torch::equal(in_place, with_grad))
        << (tlc ? "local" : "global") << " pooling: max diff "
        << (in_place - with_grad).abs().max().item<float>();
  }
}

TEST(NAFBlock, DropoutOnlyInTraining) {
  torch::manual_seed(2);
  sm::NAFBlock block(sm::NAFBlockOptions(4).drop_out_rate(0.5));
  {
    torch::NoGradGuard g;
    for (auto& p : block->parameters()) p.uniform_(-0.5, 0.5);
  }
  const auto x = torch::randn({1, 4, 6, 6});
  block->eval();
  expect_close(block(x), block(x), 0, "eval deterministic");
  block->train();
  EXPECT_GT((block(x) - block(x)).abs().max().item<double>(), 0.0);
}

TEST(LocalPool, KernelRuleOfTheReference) {
  // GoPro default: train 256 -> base 384; kernel = feature * 384 // 256.
  auto o = sm::tlc_pool_options(256, 256, 256, 256, false);
  EXPECT_EQ(o.kernel_size, (std::array<int64_t, 2>{384, 384}));
  EXPECT_EQ(o.max_r, (std::array<int64_t, 2>{5, 5}));
  o = sm::tlc_pool_options(64, 32, 256, 256, true);
  EXPECT_EQ(o.kernel_size, (std::array<int64_t, 2>{96, 48}));
  EXPECT_EQ(o.max_r, (std::array<int64_t, 2>{1, 1}));
  o = sm::tlc_pool_options(13, 13, 13, 13, false);  // base int(19.5) = 19
  EXPECT_EQ(o.kernel_size, (std::array<int64_t, 2>{19, 19}));
}

TEST(LocalPool, GlobalWhenKernelCoversInput) {
  const auto x = torch::randn({2, 3, 7, 9});
  sm::LocalAvgPool2dOptions o;
  o.kernel_size = {7, 9};
  expect_close(sm::local_avg_pool2d(x, o), x.mean({2, 3}, true), 1e-6, "global");
  o.kernel_size = {7, 8};  // one dim smaller: local
  EXPECT_EQ(sm::local_avg_pool2d(x, o).sizes(), x.sizes());
}

TEST(LocalPool, ExactPathIsStrideOneAvgPoolWithReplicatePad) {
  torch::manual_seed(3);
  const auto x = torch::randn({1, 2, 11, 14}, torch::kDouble);
  sm::LocalAvgPool2dOptions o;
  o.kernel_size = {4, 20};  // width clamps to the input width
  const auto got = sm::local_avg_pool2d(x, o);
  auto want = torch::avg_pool2d(x, {4, 14}, {1, 1});  // (11-4+1, 1)
  want = torch::nn::functional::pad(
      want, torch::nn::functional::PadFuncOptions({6, 7, 1, 2}).mode(torch::kReplicate));
  expect_close(got, want, 1e-10, "exact local mean");
  o.auto_pad = false;
  EXPECT_EQ(sm::local_avg_pool2d(x, o).sizes(), (std::vector<int64_t>{1, 2, 8, 1}));
}

TEST(LocalPool, FastPathShapes) {
  // h = 40 -> stride 5 (capped by max_r), w = 48 -> stride 4.
  const auto x = torch::rand({1, 2, 40, 48});
  sm::LocalAvgPool2dOptions o;
  o.kernel_size = {24, 24};
  o.fast_imp = true;
  o.max_r = {5, 5};
  const auto y = sm::local_avg_pool2d(x, o);
  EXPECT_EQ(y.sizes(), x.sizes());
  // A constant input keeps its value (every window mean is the constant).
  expect_close(sm::local_avg_pool2d(torch::full({1, 1, 40, 48}, 0.25), o),
               torch::full({1, 1, 40, 48}, 0.25), 1e-6, "constant");
}

// The float32 integral-image kernel (NCHW and channels-last, inference) against the ATen
// composition (cumsum, pad, window difference, replicate pad), which autograd still runs:
// bit for bit, over windows that clamp, auto_pad on and off, batches and odd sizes.
TEST(LocalPool, IntegralKernelEqualsTheAtenCompositionBitForBit) {
  torch::manual_seed(11);
  struct Case {
    std::vector<int64_t> shape;
    std::array<int64_t, 2> kernel;
    bool auto_pad;
  };
  const std::vector<Case> cases = {{{1, 3, 37, 53}, {12, 20}, true},
                                   {{2, 16, 45, 80}, {24, 24}, true},
                                   {{1, 5, 30, 17}, {4, 40}, true},
                                   {{2, 7, 9, 31}, {9, 6}, false},
                                   {{1, 33, 61, 47}, {48, 48}, true}};
  for (const auto& c : cases) {
    for (const bool channels_last : {false, true}) {
      auto x = torch::randn(c.shape) * 3 + 1;
      if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      sm::LocalAvgPool2dOptions o;
      o.kernel_size = c.kernel;
      o.auto_pad = c.auto_pad;
      const auto ref = sm::local_avg_pool2d(x.clone().requires_grad_(), o).detach();
      torch::Tensor got;
      {
        torch::InferenceMode guard;
        got = sm::local_avg_pool2d(x, o);
      }
      const std::string what =
          fmt::format("shape {} kernel {}x{} auto_pad {} channels_last {}", fmt::join(c.shape, "x"),
                      c.kernel[0], c.kernel[1], c.auto_pad, channels_last);
      ASSERT_EQ(got.sizes(), ref.sizes()) << what;
      EXPECT_TRUE(torch::equal(got, ref))
          << what << ": max diff " << (got - ref).abs().max().item<float>();
      EXPECT_EQ(got.is_contiguous(at::MemoryFormat::ChannelsLast) && !got.is_contiguous(),
                channels_last && c.shape[1] > 1)
          << what << ": the result keeps the input's layout";
    }
  }
}
