// The fused NAFBlock kernels' hand-written backward (models/fused.h *_autograd)
// against autograd through the unfused ATen composition, evaluated in float64
// (the reference) and float32 (what training runs today), in NCHW and
// channels-last, on odd sizes and channel counts off the 16-lane width.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "samdeblur/models/fused.h"
#include "samdeblur/models/layers.h"
#include "support/test_support.h"

namespace sm = samdeblur::models;
using samdeblur::test::expect_close;

namespace {

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

struct Size {
  int64_t h, w;
};
const std::vector<Size> kSizes = {{1, 1}, {7, 9}, {17, 33}, {3, 300}};

std::string where(const char* what, int64_t c, Size s, bool cl) {
  return std::string(what) + (cl ? " channels-last C=" : " nchw C=") + std::to_string(c) + " " +
         std::to_string(s.h) + "x" + std::to_string(s.w);
}

// |actual - expected| <= rel * max(1, max |expected|): float32 rounding of sums
// over up to ~10^4 terms.
void expect_grad_close(const torch::Tensor& actual, const torch::Tensor& expected, double rel,
                       const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << ": no gradient";
  EXPECT_EQ(actual.scalar_type(), torch::kFloat) << what;
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  expect_close(actual, expected, rel * scale, what);
}

// Gradients of sum(f(inputs) * gy) for inputs that require grad.
std::vector<torch::Tensor> grads_of(const torch::Tensor& out, const torch::Tensor& gy,
                                    const std::vector<torch::Tensor>& inputs) {
  return torch::autograd::grad({out}, inputs, {gy});
}

std::vector<torch::Tensor> leaves(const std::vector<torch::Tensor>& values, torch::Dtype dtype,
                                  bool channels_last) {
  std::vector<torch::Tensor> out;
  for (const auto& v : values) {
    auto t = v.to(dtype);
    if (channels_last && t.dim() == 4) t = t.contiguous(kChannelsLast);
    out.push_back(t.detach().requires_grad_(true));
  }
  return out;
}

// LayerNorm2d as plain ATen ops (autograd differentiates the composition).
torch::Tensor layer_norm_composition(const torch::Tensor& x, const torch::Tensor& weight,
                                     const torch::Tensor& bias, double eps) {
  const int64_t c = x.size(1);
  const auto mu = x.mean(1, /*keepdim=*/true);
  const auto var = (x - mu).pow(2).mean(1, /*keepdim=*/true);
  return weight.view({1, c, 1, 1}) * ((x - mu) / (var + eps).sqrt()) + bias.view({1, c, 1, 1});
}

// SimpleGate times the channel attention as plain ATen ops.
torch::Tensor gate_attention_composition(const torch::Tensor& x, const torch::Tensor& weight,
                                         const torch::Tensor& bias) {
  const auto g = sm::simple_gate(x);
  return g * torch::conv2d(torch::adaptive_avg_pool2d(g, {1, 1}), weight, bias);
}

}  // namespace

TEST(FusedLayerNormBackward, EqualsAutogradThroughTheComposition) {
  torch::manual_seed(10);
  for (const int64_t c : {1, 5, 16, 37, 64}) {
    for (const Size s : kSizes) {
      const auto x = torch::randn({2, c, s.h, s.w}) * 3 + 1;
      const auto weight = torch::rand({c}) + 0.5, bias = torch::randn({c});
      const auto gy = torch::randn({2, c, s.h, s.w});
      const auto ref = leaves({x, weight, bias}, torch::kDouble, false);
      const auto want = grads_of(layer_norm_composition(ref[0], ref[1], ref[2], 1e-6),
                                 gy.to(torch::kDouble), ref);
      for (const bool cl : {false, true}) {
        const auto in = leaves({x, weight, bias}, torch::kFloat, cl);
        const auto y = sm::fused_layer_norm_2d_autograd(in[0], in[1], in[2], 1e-6);
        ASSERT_TRUE(y.requires_grad());
        expect_close(y, layer_norm_composition(ref[0], ref[1], ref[2], 1e-6), 2e-5,
                     where("forward", c, s, cl));
        const auto got = grads_of(y, cl ? gy.contiguous(kChannelsLast) : gy, in);
        expect_grad_close(got[0], want[0], 2e-5, where("grad x", c, s, cl));
        expect_grad_close(got[1], want[1], 2e-5, where("grad weight", c, s, cl));
        expect_grad_close(got[2], want[2], 2e-5, where("grad bias", c, s, cl));
        EXPECT_TRUE(got[0].is_contiguous(
            cl && c > 1 && s.h * s.w > 1 ? kChannelsLast : at::MemoryFormat::Contiguous))
            << where("grad x layout", c, s, cl);
        // And against today's training path (the official closed-form backward, float32).
        const auto today = leaves({x, weight, bias}, torch::kFloat, cl);
        const auto base = grads_of(sm::layer_norm_2d(today[0], today[1], today[2], 1e-6),
                                   cl ? gy.contiguous(kChannelsLast) : gy, today);
        for (size_t i = 0; i < 3; ++i)
          expect_grad_close(got[i], base[i], 4e-5, where("vs layer_norm_2d", c, s, cl));
      }
    }
  }
}

TEST(FusedLayerNormBackward, AnUpstreamGradientInTheOtherLayoutIsAccepted) {
  torch::manual_seed(11);
  const auto x = torch::randn({2, 8, 5, 6});
  const auto weight = torch::rand({8}), bias = torch::randn({8});
  const auto gy = torch::randn({2, 8, 5, 6});
  const auto ref = leaves({x, weight, bias}, torch::kFloat, false);
  const auto want =
      grads_of(sm::fused_layer_norm_2d_autograd(ref[0], ref[1], ref[2], 1e-6), gy, ref);
  const auto in = leaves({x, weight, bias}, torch::kFloat, true);
  const auto got = grads_of(sm::fused_layer_norm_2d_autograd(in[0], in[1], in[2], 1e-6), gy, in);
  for (size_t i = 0; i < 3; ++i) expect_grad_close(got[i], want[i], 1e-6, "mixed layouts");
}

TEST(FusedSimpleGateBackward, EqualsAutogradBitForBit) {
  torch::manual_seed(12);
  for (const int64_t c : {1, 3, 16, 40}) {
    for (const Size s : kSizes) {
      const auto x = torch::randn({2, 2 * c, s.h, s.w});
      const auto gy = torch::randn({2, c, s.h, s.w});
      for (const bool cl : {false, true}) {
        const auto ref = leaves({x}, torch::kFloat, cl);
        const auto g = cl ? gy.contiguous(kChannelsLast) : gy;
        const auto want = grads_of(sm::simple_gate(ref[0]), g, ref);
        const auto in = leaves({x}, torch::kFloat, cl);
        const auto y = sm::fused_simple_gate_autograd(in[0]);
        EXPECT_TRUE(torch::equal(y, sm::simple_gate(ref[0]))) << where("forward", c, s, cl);
        const auto got = grads_of(y, g, in);
        // One product per element, as autograd's MulBackward.
        EXPECT_TRUE(torch::equal(got[0], want[0])) << where("grad x", c, s, cl);
      }
    }
  }
}

// a + x * beta: the forward and the gradients of a and x bit for bit as autograd's
// addcmul; beta's sum within float32 rounding (computed in one pass with x's gradient).
TEST(FusedScaledResidualBackward, EqualsAutogradsAddcmul) {
  torch::manual_seed(13);
  for (const int64_t c : {1, 3, 16, 40}) {
    for (const Size s : kSizes) {
      const auto a = torch::randn({2, c, s.h, s.w});
      const auto x = torch::randn({2, c, s.h, s.w});
      const auto beta = torch::randn({1, c, 1, 1});
      const auto gy = torch::randn({2, c, s.h, s.w});
      for (const bool cl : {false, true}) {
        const auto ref = leaves({a, x, beta}, torch::kFloat, cl);
        const auto g = cl ? gy.contiguous(kChannelsLast) : gy;
        const auto ref_out = torch::addcmul(ref[0], ref[1], ref[2]);
        const auto want = grads_of(ref_out, g, ref);
        const auto in = leaves({a, x, beta}, torch::kFloat, cl);
        const auto y = sm::fused_scaled_residual_autograd(in[0], in[1], in[2]);
        EXPECT_TRUE(torch::equal(y, ref_out)) << where("forward", c, s, cl);
        const auto got = grads_of(y, g, in);
        EXPECT_TRUE(torch::equal(got[0], want[0])) << where("grad a", c, s, cl);
        EXPECT_TRUE(torch::equal(got[1], want[1])) << where("grad x", c, s, cl);
        EXPECT_EQ(got[1].is_contiguous(kChannelsLast) && !got[1].is_contiguous(),
                  cl && c > 1 && s.h * s.w > 1)
            << where("grad x layout", c, s, cl);
        expect_grad_close(got[2], want[2], 2e-5, where("grad beta", c, s, cl));
      }
    }
  }
}

TEST(FusedGateAttentionBackward, EqualsAutogradThroughTheComposition) {
  torch::manual_seed(13);
  for (const int64_t c : {1, 3, 16, 40}) {
    for (const Size s : kSizes) {
      const auto x = torch::randn({2, 2 * c, s.h, s.w});
      const auto weight = torch::randn({c, c, 1, 1}) * 0.5, bias = torch::randn({c});
      const auto gy = torch::randn({2, c, s.h, s.w});
      const auto ref = leaves({x, weight, bias}, torch::kDouble, false);
      const auto ref_out = gate_attention_composition(ref[0], ref[1], ref[2]);
      const auto want = grads_of(ref_out, gy.to(torch::kDouble), ref);
      for (const bool cl : {false, true}) {
        const auto in = leaves({x, weight, bias}, torch::kFloat, cl);
        const auto y = sm::fused_gate_attention_autograd(in[0], in[1], in[2]);
        ASSERT_TRUE(y.requires_grad());
        expect_grad_close(y, ref_out, 2e-5, where("forward", c, s, cl));
        const auto got = grads_of(y, cl ? gy.contiguous(kChannelsLast) : gy, in);
        expect_grad_close(got[0], want[0], 2e-5, where("grad x", c, s, cl));
        expect_grad_close(got[1], want[1], 2e-5, where("grad weight", c, s, cl));
        expect_grad_close(got[2], want[2], 2e-5, where("grad bias", c, s, cl));
        EXPECT_EQ(got[1].sizes(), weight.sizes());
      }
    }
  }
}

TEST(FusedGateAttentionBackward, WithoutGradientsItIsTheInferenceKernel) {
  torch::manual_seed(14);
  const auto x = torch::randn({1, 8, 6, 7});
  const auto weight = torch::randn({4, 4, 1, 1}), bias = torch::randn({4});
  torch::NoGradGuard no_grad;
  auto [gate, mean] = sm::fused_gate_and_mean(x);
  EXPECT_TRUE(torch::equal(sm::fused_gate_attention_autograd(x, weight, bias),
                           gate * torch::conv2d(mean, weight, bias)));
  EXPECT_THROW(sm::fused_gate_attention_autograd(x, torch::randn({4, 3, 1, 1}), bias), c10::Error);
}

namespace {

// Every parameter drawn at random (beta / gamma are zero at construction).
sm::NAFBlock random_block(sm::NAFBlockOptions options) {
  sm::NAFBlock block{options};
  torch::NoGradGuard no_grad;
  for (auto& p : block->parameters()) p.uniform_(-0.5, 0.5);
  return block;
}

// Input and parameter gradients of sum(block(x) * gy), fused or reference.
std::vector<torch::Tensor> block_grads(sm::NAFBlock& block, const torch::Tensor& x,
                                       const torch::Tensor& gy, bool fused) {
  for (auto& p : block->parameters()) p.mutable_grad() = torch::Tensor();
  const auto in = x.detach().requires_grad_(true);
  const auto y = fused ? block->forward_fused(in) : block->forward_reference(in);
  y.backward(gy);
  std::vector<torch::Tensor> out = {in.grad()};
  for (auto& p : block->parameters()) out.push_back(p.grad().clone());
  return out;
}

}  // namespace

TEST(FusedNAFBlockBackward, EqualsTheReferenceBackwardInBothLayouts) {
  torch::manual_seed(15);
  for (const bool local : {false, true}) {
    sm::NAFBlockOptions options(12);
    if (local) options.local_pool(sm::tlc_pool_options(9, 10, 16, 16, false));
    auto block = random_block(options);
    block->train();
    const auto x = torch::randn({2, 12, 13, 21});
    const auto gy = torch::randn({2, 12, 13, 21});
    const auto want = block_grads(block, x, gy, false);
    for (const bool cl : {false, true}) {
      const auto got = block_grads(block, cl ? x.contiguous(kChannelsLast) : x,
                                   cl ? gy.contiguous(kChannelsLast) : gy, true);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i)
        expect_grad_close(got[i], want[i], 1e-4,
                          std::string(local ? "local " : "") + (cl ? "channels-last" : "nchw") +
                              " gradient " + std::to_string(i));
      EXPECT_TRUE(!cl || got[0].is_contiguous(kChannelsLast)) << "input gradient layout";
    }
  }
}

TEST(FusedNAFBlockBackward, ForwardTakesTheFusedPathWithGradientsOnlyWhenAskedTo) {
  torch::manual_seed(16);
  auto block = random_block(sm::NAFBlockOptions(8));
  block->fused = true;
  const auto x = torch::randn({1, 8, 9, 10});
  // The reference ends in y + x * gamma, the fused path in the one-pass residual function.
  const auto reference = block->forward(x);
  EXPECT_TRUE(torch::equal(reference, block->forward_reference(x)));
  EXPECT_EQ(reference.grad_fn()->name(), "AddBackward0");
  block->fused_backward = true;
  const auto y = block->forward(x);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_NE(y.grad_fn()->name().find("FusedScaledResidualFunction"), std::string::npos)
      << y.grad_fn()->name();
  EXPECT_TRUE(torch::equal(y, block->forward_fused(x)));
}
