// The channels-last inference kernels of models/fused_forward.h against the ATen
// composition they replace, in float32 and bfloat16, and the networks' bf16
// execution with them.
#include "samdeblur/models/fused_forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../src/models/fused_parallel.h"  // private: the kernels' parallel_for
#include "model_fixtures.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/models/layers.h"
#include "samdeblur/models/nafnet.h"
#include "samdeblur/models/network.h"
#include "support/tiny_networks.h"

namespace sm = samdeblur::models;
using sm::testing::expect_close;

namespace {

constexpr auto kCL = at::MemoryFormat::ChannelsLast;

torch::Tensor cl(const torch::Tensor& x, torch::ScalarType dtype = torch::kFloat) {
  return x.to(dtype).contiguous(kCL);
}

bool is_cl(const torch::Tensor& x) { return x.is_contiguous(kCL); }

// |a - b| <= ulps bfloat16 steps of b (8 significant bits), plus a floor for
// values near zero.
void expect_within_bf16_ulps(const torch::Tensor& a, const torch::Tensor& b, double ulps,
                             double floor, const std::string& what) {
  const auto ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  const auto excess = (ad - bd).abs() - (bd.abs() * ulps / 128.0 + floor);
  EXPECT_LE(excess.max().item<double>(), 0.0) << what;
}

double psnr(const torch::Tensor& got, const torch::Tensor& want) {
  const double mse =
      (got.to(torch::kDouble) - want.to(torch::kDouble)).pow(2).mean().item<double>();
  return mse == 0.0 ? 1000.0 : 10.0 * std::log10(1.0 / mse);
}

void randomise(torch::nn::Module& m, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.uniform_(-scale, scale);
}

// The model fixtures' tiny network: test::tiny_network_options.
const auto& tiny = samdeblur::test::tiny_network_options;

const std::vector<std::pair<int64_t, int64_t>> kSizes = {{1, 1}, {7, 9}, {17, 33}};

}  // namespace

// The kernels' parallel_for covers the range once, in chunks of at least `grain`, and
// runs them on more than one thread when LibTorch has more (at::parallel_for, a header
// template, ran them all on the calling thread in a library built without -fopenmp).
TEST(FusedParallelFor, CoversTheRangeOnceOnSeveralThreads) {
  const int before = torch::get_num_threads();
  torch::set_num_threads(2);
  std::vector<int> hits(1000, 0);
  std::set<std::thread::id> threads;
  std::mutex mutex;
  sm::detail::parallel_for(0, 1000, 16, [&](int64_t begin, int64_t end) {
    EXPECT_GE(end - begin, 16);
    for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
    const std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  torch::set_num_threads(before);
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << "item " << i;
  EXPECT_EQ(threads.size(), 2u);
  int calls = 0;  // fewer items than the grain: one call on the caller's thread
  sm::detail::parallel_for(3, 10, 16, [&](int64_t begin, int64_t end) {
    ++calls;
    EXPECT_EQ(begin, 3);
    EXPECT_EQ(end, 10);
  });
  EXPECT_EQ(calls, 1);
}

TEST(FusedForwardLayerNorm, Fp32WithinRoundingAndBf16WithinOneStep) {
  torch::manual_seed(10);
  for (const int64_t c : {1, 5, 16, 37, 64}) {
    for (const auto& [h, w] : kSizes) {
      const std::string where =
          "C=" + std::to_string(c) + " " + std::to_string(h) + "x" + std::to_string(w);
      const auto x = torch::randn({2, c, h, w}) * 3 + 1;
      const auto weight = torch::rand({c}) + 0.5, bias = torch::randn({c});
      torch::NoGradGuard no_grad;
      const auto want = sm::layer_norm_2d(x, weight, bias, 1e-6);
      const auto got = sm::layer_norm_2d_cl(cl(x), weight, bias, 1e-6);
      expect_close(got, want, 2e-5, "fp32 " + where);
      EXPECT_TRUE(is_cl(got)) << where;
      // bf16: the reference path normalises the widened input in float32 and rounds
      // the result once; the kernel differs only in the float summation order.
      const auto xb = cl(x, torch::kBFloat16);
      const auto wb = weight.to(torch::kBFloat16), bb = bias.to(torch::kBFloat16);
      const auto gotb = sm::layer_norm_2d_cl(xb, wb, bb, 1e-6);
      EXPECT_EQ(gotb.scalar_type(), torch::kBFloat16);
      EXPECT_TRUE(is_cl(gotb)) << where;
      expect_within_bf16_ulps(gotb, sm::layer_norm_2d(xb, wb, bb, 1e-6), 1.0, 1e-5,
                              "bf16 " + where);
    }
  }
}

TEST(FusedForwardGate, BitIdenticalToSimpleGateAndMeanWithinRounding) {
  torch::manual_seed(11);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const int64_t c : {1, 3, 16, 40}) {
      for (const auto& [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {5, 7}, {40, 31}}) {
        const std::string where = std::string(c10::toString(dtype)) + " C=" + std::to_string(c) +
                                  " " + std::to_string(h) + "x" + std::to_string(w);
        const auto x = cl(torch::randn({2, 2 * c, h, w}), dtype);
        const auto want = sm::simple_gate(x);
        EXPECT_TRUE(torch::equal(sm::simple_gate_cl(x), want)) << where;
        const auto [g, m] = sm::gate_and_mean_cl(x);
        EXPECT_TRUE(torch::equal(g, want)) << where;  // one product, one rounding: exact
        EXPECT_TRUE(is_cl(g)) << where;
        EXPECT_EQ(m.scalar_type(), torch::kFloat);
        expect_close(m, torch::adaptive_avg_pool2d(want.to(torch::kFloat), {1, 1}), 1e-6,
                     "mean " + where);
      }
    }
  }
}

TEST(FusedForwardDwConvGate, EqualsConvThenGateAndMeanWithinRounding) {
  torch::manual_seed(17);
  // Channel counts below, at and off the 16-lane blocks; rows of 1, 2 and more pixels.
  for (const int64_t c : {1, 5, 16, 21, 32}) {
    for (const auto& [h, w] :
         {std::pair<int64_t, int64_t>{1, 1}, {2, 1}, {1, 3}, {9, 7}, {20, 33}}) {
      const std::string where =
          "C=" + std::to_string(c) + " " + std::to_string(h) + "x" + std::to_string(w);
      const auto u = torch::randn({2, 2 * c, h, w});
      const auto weight = torch::randn({2 * c, 1, 3, 3}) * 0.5, bias = torch::randn({2 * c});
      const auto conv = torch::conv2d(u, weight, bias, 1, 1, 1, 2 * c);
      const auto want_gate = sm::simple_gate(conv);
      const auto want_mean = torch::adaptive_avg_pool2d(want_gate, {1, 1});
      const auto [g, m] = sm::dwconv_gate_and_mean_cl(cl(u), weight, bias);
      expect_close(g, want_gate, 1e-5, "fp32 gate " + where);
      expect_close(m, want_mean, 1e-5, "fp32 mean " + where);
      EXPECT_TRUE(is_cl(g)) << where;
      // bf16: the float32 convolution of the bf16 operands, its gate rounded once.
      const auto ub = cl(u, torch::kBFloat16);
      const auto wb = weight.to(torch::kBFloat16), bb = bias.to(torch::kBFloat16);
      const auto [gb, mb] = sm::dwconv_gate_and_mean_cl(ub, wb, bb);
      EXPECT_EQ(gb.scalar_type(), torch::kBFloat16);
      const auto conv_f = torch::conv2d(ub.to(torch::kFloat), wb.to(torch::kFloat),
                                        bb.to(torch::kFloat), 1, 1, 1, 2 * c);
      const auto want_b = sm::simple_gate(conv_f);
      expect_within_bf16_ulps(gb, want_b, 1.0, 1e-4, "bf16 gate " + where);
      expect_close(mb, torch::adaptive_avg_pool2d(gb.to(torch::kFloat), {1, 1}), 1e-5,
                   "bf16 mean " + where);
    }
  }
  EXPECT_THROW(sm::dwconv_gate_and_mean_cl(cl(torch::rand({1, 4, 3, 3})), torch::rand({4, 1, 5, 5}),
                                           torch::rand({4})),
               c10::Error);
}

TEST(FusedForwardResidual, EqualsAddcmulWithinRounding) {
  torch::manual_seed(12);
  for (const int64_t c : {3, 16, 33}) {
    const auto a = torch::randn({2, c, 6, 5}), x = torch::randn({2, c, 6, 5});
    const auto s = torch::randn({1, c, 1, 1});
    const auto want = torch::addcmul(a, x, s);
    const auto got = sm::scaled_residual_cl(cl(a), cl(x), s);
    expect_close(got, want, 1e-6, "fp32 C=" + std::to_string(c));
    EXPECT_TRUE(is_cl(got));
    // bf16: computed in float32 from the bf16 operands, rounded once.
    const auto ab = cl(a, torch::kBFloat16), xb = cl(x, torch::kBFloat16);
    const auto gotb = sm::scaled_residual_cl(ab, xb, s.to(torch::kBFloat16));
    const auto wantb = torch::addcmul(ab.to(torch::kFloat), xb.to(torch::kFloat),
                                      s.to(torch::kBFloat16).to(torch::kFloat));
    EXPECT_EQ(gotb.scalar_type(), torch::kBFloat16);
    expect_within_bf16_ulps(gotb, wantb, 0.5, 1e-6, "bf16 C=" + std::to_string(c));
  }
}

TEST(FusedForwardPixelShuffle, BitIdenticalToShuffleThenAdd) {
  torch::manual_seed(13);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const int64_t c : {1, 3, 16}) {
      for (const auto& [h, w] : kSizes) {
        const auto x = cl(torch::randn({2, 4 * c, h, w}), dtype);
        const auto skip = cl(torch::randn({2, c, 2 * h, 2 * w}), dtype);
        const auto got = sm::pixel_shuffle_add_cl(x, skip);
        EXPECT_TRUE(torch::equal(got, torch::pixel_shuffle(x, 2) + skip))
            << c10::toString(dtype) << " C=" << c << " " << h << "x" << w;
        EXPECT_TRUE(is_cl(got));
      }
    }
  }
}

TEST(FusedForward, RejectsWhatItCannotTake) {
  const auto w = torch::ones({4}), b = torch::zeros({4});
  EXPECT_THROW(sm::layer_norm_2d_cl(cl(torch::rand({1, 4, 3, 3}), torch::kDouble), w, b, 1e-6),
               c10::Error);
  EXPECT_THROW(sm::layer_norm_2d_cl(torch::rand({1, 4, 3, 3}), w, b, 1e-6), c10::Error);  // NCHW
  EXPECT_THROW(sm::layer_norm_2d_cl(cl(torch::rand({1, 3, 3, 3})), w, b, 1e-6), c10::Error);
  EXPECT_THROW(sm::gate_and_mean_cl(cl(torch::rand({1, 3, 3, 3}))), c10::Error);
  EXPECT_THROW(
      sm::pixel_shuffle_add_cl(cl(torch::rand({1, 8, 2, 2})), cl(torch::rand({1, 2, 4, 3}))),
      c10::Error);
  EXPECT_THROW(sm::pixel_shuffle_add_cl(cl(torch::rand({1, 8, 2, 2})),
                                        cl(torch::rand({1, 2, 4, 4}), torch::kBFloat16)),
               c10::Error);
  EXPECT_FALSE(sm::forward_kernels_apply(torch::rand({1, 4, 3, 3})));
  EXPECT_TRUE(sm::forward_kernels_apply(cl(torch::rand({1, 4, 3, 3}), torch::kBFloat16)));
}

TEST(FusedForwardNAFBlock, Fp32WithinRoundingOfTheReferenceAndInputUntouched) {
  torch::manual_seed(14);
  for (const bool local : {false, true}) {
    for (const int64_t n : {1, 2}) {  // one image: the attention scale folded into conv3
      sm::NAFBlockOptions options(8);
      if (local) options.local_pool(sm::tlc_pool_options(8, 12, 8, 12, false));
      sm::NAFBlock block(options);
      randomise(*block, 0.5);
      block->eval();
      const auto x = torch::randn({n, 8, 13, 21});
      torch::NoGradGuard no_grad;
      const auto want = block->forward_reference(x);
      const auto input = cl(x);
      const auto before = input.clone();
      const auto got = sm::nafblock_forward_cl(*block, input);
      const std::string where = (local ? "local N=" : "global N=") + std::to_string(n);
      expect_close(got, want, 1e-5, where);
      EXPECT_TRUE(is_cl(got)) << where;
      EXPECT_TRUE(torch::equal(input, before)) << where;
      block->fused = true;  // forward() takes the kernels for a channels-last input
      EXPECT_TRUE(torch::equal(block->forward(input), got)) << where;
    }
  }
}

TEST(FusedForwardNAFBlock, TileKernelsWithinRoundingOfTheReference) {
  torch::manual_seed(16);
  // C = 16, 48 (odd 16-lane blocks), 32 (head and tail), 64, 128 (tail only); pixel
  // counts that leave partial tiles; one image (scale folded) and two.
  for (const int64_t c : {16, 32, 48, 64, 128}) {
    for (const int64_t n : {1, 2}) {
      sm::NAFBlock block{sm::NAFBlockOptions(c)};
      randomise(*block, 0.3);
      block->eval();
      const auto x = torch::randn({n, c, 7, 11});
      const std::string where = "C=" + std::to_string(c) + " N=" + std::to_string(n);
      const auto input = cl(x);
      EXPECT_TRUE(sm::nafblock_tile_kernels_apply(*block, input)) << where;
      torch::NoGradGuard no_grad;
      const auto want = block->forward_reference(x);
      const auto before = input.clone();
      const auto got = sm::nafblock_forward_cl(*block, input);
      expect_close(got, want, 1e-5, where);
      EXPECT_TRUE(is_cl(got)) << where;
      EXPECT_TRUE(torch::equal(input, before)) << where;
    }
  }
}

TEST(FusedForwardNAFBlock, TileKernelsOnlyWhereTheyApply) {
  sm::NAFBlock wide{sm::NAFBlockOptions(256)}, odd{sm::NAFBlockOptions(24)};
  sm::NAFBlockOptions local_options(32);
  local_options.local_pool(sm::tlc_pool_options(8, 12, 8, 12, false));
  sm::NAFBlock local(local_options), narrow{sm::NAFBlockOptions(32)};
  EXPECT_FALSE(sm::nafblock_tile_kernels_apply(*wide, cl(torch::rand({1, 256, 2, 2}))));
  EXPECT_FALSE(sm::nafblock_tile_kernels_apply(*odd, cl(torch::rand({1, 24, 2, 2}))));
  EXPECT_FALSE(sm::nafblock_tile_kernels_apply(*local, cl(torch::rand({1, 32, 2, 2}))));
  EXPECT_FALSE(sm::nafblock_tile_kernels_apply(
      *narrow, cl(torch::rand({1, 32, 2, 2}), torch::kBFloat16)));  // bf16: oneDNN's AMX
  EXPECT_TRUE(sm::nafblock_tile_kernels_apply(*narrow, cl(torch::rand({1, 32, 2, 2}))));
  sm::NAFBlockOptions dropout_options(32);
  dropout_options.drop_out_rate(0.5);
  sm::NAFBlock dropout(dropout_options);
  dropout->train();  // an active dropout between the convolutions
  EXPECT_FALSE(sm::nafblock_tile_kernels_apply(*dropout, cl(torch::rand({1, 32, 2, 2}))));
  dropout->eval();
  EXPECT_TRUE(sm::nafblock_tile_kernels_apply(*dropout, cl(torch::rand({1, 32, 2, 2}))));
}

TEST(FusedForwardNAFBlock, Bf16AtLeastAsCloseToFp32AsTheAtenComposition) {
  if (!sm::cpu_supports_bf16()) GTEST_SKIP() << "CPU without AVX512-BF16 / AMX-BF16";
  torch::manual_seed(15);
  sm::NAFBlock block{sm::NAFBlockOptions(16)};
  randomise(*block, 0.5);
  block->eval();
  const auto x = torch::randn({1, 16, 24, 20});
  torch::NoGradGuard no_grad;
  const auto exact = block->forward_reference(x);
  for (auto& p : block->parameters())
    p.set_data(p.dim() == 4 ? cl(p, torch::kBFloat16) : p.to(torch::kBFloat16));
  const auto xb = cl(x, torch::kBFloat16);
  const double aten_db = psnr(block->forward_reference(xb).to(torch::kFloat), exact);
  const auto fused = sm::nafblock_forward_cl(*block, xb);
  EXPECT_EQ(fused.scalar_type(), torch::kBFloat16);
  const double fused_db = psnr(fused.to(torch::kFloat), exact);
  RecordProperty("aten_bf16_block_psnr_db", std::to_string(aten_db));
  RecordProperty("fused_bf16_block_psnr_db", std::to_string(fused_db));
  EXPECT_GE(fused_db, aten_db - 1.0);
  EXPECT_GE(fused_db, 35.0);
}

TEST(FusedForwardNetwork, Bf16ChannelsLastFusedWithinFortyDecibelsOfFp32) {
  if (!sm::cpu_supports_bf16()) GTEST_SKIP() << "CPU without AVX512-BF16 / AMX-BF16";
  // The nets and input of Bf16.WithinFortyDecibelsOfFp32OnRandomWeights (fused_test.cpp),
  // there run with the ATen composition.
  torch::manual_seed(5);
  for (const std::string type : {"NAFNet", "SegNAFNet"}) {
    auto net = sm::build_network(tiny(type));
    randomise(*net, 0.3);
    net->eval();
    const auto x = torch::rand({1, 3, 32, 48});
    std::vector<sm::SegMasks> masks;
    if (net->needs_masks())
      masks.push_back(
          sm::SegMasks::from_labels(torch::randint(0, 6, {32, 48}, torch::kLong), 6, 1.0 / 255.0));
    const auto run = [&](const sm::ExecutionOptions& e) {
      net->set_execution(e);
      c10::InferenceMode guard;
      return net->forward(x, masks);
    };
    const auto exact = run({});
    auto execution = sm::parse_execution("bf16", "channels_last", "test");
    ASSERT_TRUE(execution.fused);
    const auto fused = run(execution);
    execution.fused = false;
    const auto aten = run(execution);
    net->set_execution({});
    EXPECT_EQ(fused.scalar_type(), torch::kFloat);
    const double fused_db = psnr(fused, exact), aten_db = psnr(aten, exact);
    EXPECT_GE(fused_db, 40.0) << type;
    EXPECT_GE(fused_db, aten_db - 0.5) << type;
    RecordProperty(type + "_bf16_cl_fused_psnr_db", std::to_string(fused_db));
    RecordProperty(type + "_bf16_cl_aten_psnr_db", std::to_string(aten_db));
  }
}
