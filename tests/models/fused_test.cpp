// The fused NAFBlock kernels against the unfused ATen composition, the
// channels-last and bf16 executions against the exact path, and the execution
// options' parsing and refusals.
#include "samdeblur/models/fused.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model_fixtures.h"
#include "samdeblur/core/error.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/models/layers.h"
#include "samdeblur/models/nafnet.h"
#include "samdeblur/models/network.h"
#include "support/tiny_networks.h"

namespace sm = samdeblur::models;
using sm::testing::build_with_fixture;
using sm::testing::expect_close;
using sm::testing::load_fixture;

namespace {

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

// The model fixtures' tiny network: test::tiny_network_options.
const auto& tiny = samdeblur::test::tiny_network_options;

// PSNR (dB) of `got` against `want`, peak 1.
double psnr(const torch::Tensor& got, const torch::Tensor& want) {
  const double mse =
      (got.to(torch::kDouble) - want.to(torch::kDouble)).pow(2).mean().item<double>();
  return mse == 0.0 ? 1000.0 : 10.0 * std::log10(1.0 / mse);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Every parameter drawn at random (beta / gamma are zero at construction, which
// would make every block the identity).
void randomise(torch::nn::Module& m, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.uniform_(-scale, scale);
}

sm::ExecutionOptions channels_last_fused() {
  sm::ExecutionOptions o;
  o.channels_last = true;
  o.fused = true;
  return o;
}

sm::NAFBlock random_block(int64_t c) {
  sm::NAFBlock block{sm::NAFBlockOptions(c)};
  randomise(*block, 0.5);
  block->eval();
  return block;
}

}  // namespace

TEST(FusedLayerNorm, EqualsTheUnfusedCompositionInBothLayouts) {
  torch::manual_seed(0);
  // Channel counts below, at and off the 16-lane width; pixel counts off the 256 block.
  for (const int64_t c : {1, 5, 16, 37, 64}) {
    for (const auto& [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {7, 9}, {17, 33}}) {
      const auto x = torch::randn({2, c, h, w}) * 3 + 1;
      const auto weight = torch::rand({c}) + 0.5, bias = torch::randn({c});
      torch::Tensor want;
      {
        torch::NoGradGuard no_grad;
        want = sm::layer_norm_2d(x, weight, bias, 1e-6);
      }
      const auto nchw = sm::fused_layer_norm_2d(x, weight, bias, 1e-6);
      const auto cl = sm::fused_layer_norm_2d(x.contiguous(kChannelsLast), weight, bias, 1e-6);
      const std::string where =
          "C=" + std::to_string(c) + " " + std::to_string(h) + "x" + std::to_string(w);
      expect_close(nchw, want, 2e-5, "nchw " + where);
      expect_close(cl, want, 2e-5, "channels-last " + where);
      EXPECT_TRUE(nchw.is_contiguous()) << where;
      EXPECT_TRUE(cl.is_contiguous(kChannelsLast)) << where;
    }
  }
}

TEST(FusedLayerNorm, RejectsWhatItCannotTake) {
  const auto w = torch::ones({4}), b = torch::zeros({4});
  EXPECT_THROW(sm::fused_layer_norm_2d(torch::rand({1, 4, 3, 3}, torch::kDouble), w, b, 1e-6),
               c10::Error);
  EXPECT_THROW(sm::fused_layer_norm_2d(torch::rand({1, 4, 3, 6}).slice(3, 0, 6, 2), w, b, 1e-6),
               c10::Error);
  EXPECT_THROW(sm::fused_layer_norm_2d(torch::rand({1, 3, 3, 3}), w, b, 1e-6), c10::Error);
}

TEST(FusedGateAndMean, EqualsSimpleGateAndAdaptiveAvgPool) {
  torch::manual_seed(1);
  for (const int64_t c : {1, 3, 16, 40}) {
    for (const auto& [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {5, 7}, {40, 31}}) {
      const auto x = torch::randn({2, 2 * c, h, w});
      const auto gate = sm::simple_gate(x);
      const auto mean = torch::adaptive_avg_pool2d(gate, {1, 1});
      for (const bool cl : {false, true}) {
        const auto [g, m] = sm::fused_gate_and_mean(cl ? x.contiguous(kChannelsLast) : x);
        const std::string where = (cl ? "channels-last C=" : "nchw C=") + std::to_string(c) + " " +
                                  std::to_string(h) + "x" + std::to_string(w);
        EXPECT_TRUE(torch::equal(g, gate)) << where;  // one product per element: exact
        EXPECT_EQ(m.sizes(), mean.sizes()) << where;
        expect_close(m, mean, 1e-6, "mean " + where);
        EXPECT_EQ(g.is_contiguous(kChannelsLast) && !g.is_contiguous(), cl && c > 1 && h * w > 1)
            << where;
      }
    }
  }
}

TEST(FusedNAFBlock, EqualsTheReferenceAndKeepsTheLayout) {
  torch::manual_seed(2);
  for (const int64_t c : {4, 16}) {
    auto block = random_block(c);
    const auto x = torch::randn({2, c, 13, 21});
    torch::NoGradGuard no_grad;
    const auto want = block->forward_reference(x);
    expect_close(block->forward_fused(x), want, 1e-5, "fused nchw");
    const auto x_cl = x.contiguous(kChannelsLast);
    const auto ref_cl = block->forward_reference(x_cl);
    expect_close(ref_cl, want, 1e-5, "reference channels-last");
    EXPECT_TRUE(ref_cl.is_contiguous(kChannelsLast)) << "reference changed the layout";
    const auto fused_cl = block->forward_fused(x_cl);
    expect_close(fused_cl, want, 1e-5, "fused channels-last");
    EXPECT_TRUE(fused_cl.is_contiguous(kChannelsLast)) << "fused changed the layout";
  }
}

TEST(FusedNAFBlock, ForwardTakesTheFusedPathOnlyWithoutGradients) {
  torch::manual_seed(3);
  auto block = random_block(8);
  block->fused = true;
  const auto x = torch::randn({1, 8, 9, 10});
  // With autograd on, forward is the reference composition, bit for bit.
  const auto with_grad = block->forward(x);
  EXPECT_TRUE(with_grad.requires_grad());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(with_grad, block->forward_reference(x)));
  EXPECT_TRUE(torch::equal(block->forward(x), block->forward_fused(x)));
}

TEST(ChannelsLast, PixelShuffleAndTheUpSamplerKeepTheLayout) {
  const auto x = torch::randn({1, 16, 5, 6}).contiguous(kChannelsLast);
  const auto y = torch::pixel_shuffle(x, 2);
  EXPECT_TRUE(y.is_contiguous(kChannelsLast));
  expect_close(y, torch::pixel_shuffle(x.contiguous(), 2), 0.0, "pixel shuffle");
  auto net = sm::NAFNet(tiny("NAFNet"));
  randomise(*net, 0.3);
  net->set_execution(channels_last_fused());
  c10::InferenceMode guard;
  const auto body_in = torch::randn({1, 3, 16, 24}).contiguous(kChannelsLast);
  EXPECT_TRUE(net->body().forward(body_in).is_contiguous(kChannelsLast));
  for (const auto& up : net->body().ups->children()) {
    auto seq = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(up);
    ASSERT_TRUE(seq);
    const int64_t c = seq->at<torch::nn::Conv2dImpl>(0).options.in_channels();
    EXPECT_TRUE(seq->forward(torch::randn({1, c, 4, 6}).contiguous(kChannelsLast))
                    .is_contiguous(kChannelsLast));
  }
}

namespace {

// Output of `net` on the fixture input, exact path and `execution`.
std::pair<torch::Tensor, torch::Tensor> both_ways(sm::DeblurNetImpl& net,
                                                  const torch::Tensor& input,
                                                  const std::vector<sm::SegMasks>& masks,
                                                  const sm::ExecutionOptions& execution) {
  net.eval();
  torch::Tensor exact, other;
  {
    c10::InferenceMode guard;
    exact = net.forward(input, masks);
  }
  net.set_execution(execution);
  {
    c10::InferenceMode guard;
    other = net.forward(input, masks);
  }
  net.set_execution({});
  return {exact, other};
}

void expect_within_fp32_rounding(const std::string& fixture, sm::NetworkOptions options, bool seg) {
  SCOPED_TRACE(fixture);
  const auto data = load_fixture(fixture + ".npz");
  auto net = build_with_fixture(std::move(options), data);
  std::vector<sm::SegMasks> masks;
  if (seg)
    masks = {sm::SegMasks::from_masks(data.at("masks0"), 1.0 / 255.0),
             sm::SegMasks::from_masks(data.at("masks1"), 1.0 / 255.0)};
  const auto [exact, fast] = both_ways(*net, data.at("input"), masks, channels_last_fused());
  EXPECT_GE(psnr(fast, exact), 60.0);
  EXPECT_LE(max_abs_diff(fast, exact), 1e-4);
  expect_close(fast, data.at("output"), 1e-4, "against the official output");
  EXPECT_TRUE(fast.is_contiguous());
  EXPECT_EQ(fast.scalar_type(), torch::kFloat);
  // Back to the default: the exact path again, bit for bit.
  c10::InferenceMode guard;
  EXPECT_TRUE(torch::equal(net->forward(data.at("input"), masks), exact));
}

}  // namespace

TEST(ChannelsLast, NAFNetFamilyWithinFp32RoundingOnTheOracleFixtures) {
  expect_within_fp32_rounding("nafnet", tiny("NAFNet"), false);
  auto cat = tiny("NAFNet");
  cat.mask = true;
  expect_within_fp32_rounding("nafnet_cat", cat, false);
  expect_within_fp32_rounding("nafnet_local", tiny("NAFNetLocal"), false);
  expect_within_fp32_rounding("segnafnet", tiny("SegNAFNet"), true);
}

TEST(ChannelsLast, RandomWeightsOddSizesAndBatches) {
  torch::manual_seed(4);
  auto net = sm::build_network(tiny("NAFNet"));
  randomise(*net, 0.3);
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {17, 30}, {33, 7}}) {
    const auto x = torch::rand({2, 3, h, w});
    const auto [exact, fast] = both_ways(*net, x, {}, channels_last_fused());
    EXPECT_GE(psnr(fast, exact), 60.0) << h << "x" << w;
    EXPECT_EQ(fast.sizes(), exact.sizes());
  }
}

// The TLC forms in float32 channels-last with real local windows (train_size 16 on 32x48
// inputs): width 8 (oneDNN's path around the kernels) and width 16 (the head tiles and the
// fused depthwise conv + gate, then the local means), within float32 rounding of the exact
// path.
TEST(ChannelsLast, LocalFormsWithLocalWindowsWithinFp32Rounding) {
  torch::manual_seed(8);
  for (const std::string type : {"NAFNetLocal", "SegNAFNetLocal"}) {
    for (const int64_t width : {8, 16}) {
      auto options = tiny(type);
      options.width = width;
      options.train_size = {1, 3, 16, 16};
      auto net = sm::build_network(options);
      randomise(*net, 0.3);
      const auto x = torch::rand({1, 3, 32, 48});
      std::vector<sm::SegMasks> masks;
      if (net->needs_masks())
        masks.push_back(sm::SegMasks::from_labels(torch::randint(0, 6, {32, 48}, torch::kLong), 6,
                                                  1.0 / 255.0));
      const auto [exact, fast] = both_ways(*net, x, masks, channels_last_fused());
      EXPECT_GE(psnr(fast, exact), 60.0) << type << " width " << width;
      EXPECT_LE(max_abs_diff(fast, exact), 1e-4) << type << " width " << width;
    }
  }
}

namespace {

// bf16 against fp32 on a tiny random-weight net of `options` (32x48 input, 6 masks for the
// Seg types), NCHW and channels-last (with the fused kernels when `fused_with_cl`):
// float32 output, PSNR at least `min_db`, recorded as <type>_<nchw|cl>_bf16_psnr_db.
// Draws from the global generator: callers seed once per test.
void expect_bf16_within(const sm::NetworkOptions& options, double min_db, bool fused_with_cl) {
  auto net = sm::build_network(options);
  randomise(*net, 0.3);
  const auto x = torch::rand({1, 3, 32, 48});
  std::vector<sm::SegMasks> masks;
  if (net->needs_masks())
    masks.push_back(
        sm::SegMasks::from_labels(torch::randint(0, 6, {32, 48}, torch::kLong), 6, 1.0 / 255.0));
  for (const bool cl : {false, true}) {
    sm::ExecutionOptions o;
    o.dtype = torch::kBFloat16;
    o.channels_last = cl;
    o.fused = cl && fused_with_cl;
    const auto [exact, bf16] = both_ways(*net, x, masks, o);
    EXPECT_EQ(bf16.scalar_type(), torch::kFloat);
    const double db = psnr(bf16, exact);
    EXPECT_GE(db, min_db) << options.type << (cl ? " channels-last" : " nchw");
    ::testing::Test::RecordProperty(options.type + (cl ? "_cl" : "_nchw") + "_bf16_psnr_db",
                                    std::to_string(db));
  }
}

}  // namespace

TEST(Bf16, WithinFortyDecibelsOfFp32OnRandomWeights) {
  if (!sm::cpu_supports_bf16()) GTEST_SKIP() << "CPU without AVX512-BF16 / AMX-BF16";
  torch::manual_seed(5);
  for (const std::string type : {"NAFNet", "SegNAFNet"})
    expect_bf16_within(tiny(type), 40.0, false);
}

// The TLC (*Local) forms in bf16: the local mean (an integral image) and its replicate
// padding run in float32 (ATen 1.13 has no bf16 replication_pad2d on the CPU, and a
// bf16 cumulative sum would lose the window means); train_size 16 makes 32x48 inputs
// use real local windows, not the global-pool early out. Measured 35.9-39.0 dB
// (2026-12-02), against 41-46 dB for the global-pool forms: the per-pixel attention
// scales of the local windows are rounded to bf16 too.
TEST(Bf16, LocalFormsRunWithLocalWindows) {
  if (!sm::cpu_supports_bf16()) GTEST_SKIP() << "CPU without AVX512-BF16 / AMX-BF16";
  torch::manual_seed(6);
  for (const std::string type : {"NAFNetLocal", "SegNAFNetLocal"}) {
    auto options = tiny(type);
    options.train_size = {1, 3, 16, 16};
    expect_bf16_within(options, 34.0, true);
  }
}

TEST(Execution, ParsesAndRefuses) {
  const auto fast = sm::parse_execution("fp32", "channels_last", "val");
  EXPECT_TRUE(fast.channels_last && fast.fused && fast.dtype == torch::kFloat);
  EXPECT_TRUE(sm::parse_execution("fp32", "contiguous", "val").is_default());
  EXPECT_EQ(sm::parse_execution("bf16", "contiguous", "val").dtype, torch::kBFloat16);
  EXPECT_TRUE(sm::parse_execution("bf16", "channels_last", "val").fused);  // fused_forward.h
  EXPECT_THROW(sm::parse_execution("fp16", "contiguous", "val.precision"), samdeblur::ConfigError);
  EXPECT_THROW(sm::parse_execution("fp32", "nhwc", "val.memory_format"), samdeblur::ConfigError);
  // auto (inference's default): channels-last + fused kernels on the CPU, the exact layout
  // on CUDA.
  const auto cpu_auto = sm::parse_execution("fp32", "auto", "val");
  EXPECT_TRUE(cpu_auto.channels_last && cpu_auto.fused && cpu_auto.dtype == torch::kFloat);
  EXPECT_TRUE(
      sm::parse_execution("fp32", "auto", "val", torch::Device(torch::kCUDA, 0)).is_default());
  EXPECT_EQ(std::string(sm::kInferenceMemoryFormat), "auto");
  EXPECT_TRUE(sm::cpuinfo_has_bf16("processor : 0\nflags : fpu avx512f avx512_bf16 sse\n"));
  EXPECT_TRUE(sm::cpuinfo_has_bf16("flags\t\t: fpu amx_bf16 amx_tile\n"));
  EXPECT_FALSE(sm::cpuinfo_has_bf16("flags : fpu avx512f avx512bw\nbugs : avx512_bf16\n"));
  sm::ExecutionOptions bf16;
  bf16.dtype = torch::kBFloat16;
  if (sm::cpu_supports_bf16()) {
    EXPECT_NO_THROW(sm::check_execution_supported(bf16, torch::kCPU));
  } else {
    EXPECT_THROW(sm::check_execution_supported(bf16, torch::kCPU), samdeblur::Error);
  }
  EXPECT_NO_THROW(sm::check_execution_supported(bf16, torch::Device(torch::kCUDA, 0)));
  EXPECT_NO_THROW(sm::check_execution_supported(fast, torch::kCPU));
}
