// SAM's encoder attention through at::scaled_dot_product_attention (LibTorch >= 2.1,
// EncoderAttentionImpl::sdpa) equals the blocked explicit arithmetic and the reference's
// unfused path within fp32 rounding, on the CPU (README, "LibTorch versions").
#include <gtest/gtest.h>

#include <iostream>
#include <tuple>

#include "samdeblur/core/torch_compat.h"
#include "samdeblur/sam/image_encoder.h"
#include "samdeblur/sam/sam_model.h"
#include "support/test_support.h"

using namespace samdeblur;
using namespace samdeblur::sam;

namespace {

constexpr bool kHaveSdpa = SAMDEBLUR_TORCH_AT_LEAST(2, 1);

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

TEST(EncoderSdpa, EqualsBlockedAndUnfusedPaths) {
  if (!kHaveSdpa)
    GTEST_SKIP() << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                 << " has no scaled_dot_product_attention (2.1)";
  torch::manual_seed(4);
  c10::InferenceMode guard;
  // Two 14 x 14 windows, a 24 x 20 global grid, and the grid without relative positions;
  // 3 heads of 16. Budgets: one query row per block, and whole heads.
  for (const auto& [b, h, w, rel] : {std::tuple<int64_t, int64_t, int64_t, bool>{2, 14, 14, true},
                                     {1, 24, 20, true},
                                     {1, 24, 20, false}}) {
    EncoderAttention attn(48, 3, true, rel, std::make_pair(h, w));
    if (rel) {
      attn->rel_pos_h.normal_(0, 0.5);
      attn->rel_pos_w.normal_(0, 0.5);
    }
    const auto x = torch::randn({b, h, w, 48});
    attn->blocked = false;
    const auto unfused = attn->forward(x);
    const double tol = 1e-5 * max_abs(unfused);
    attn->blocked = true;
    for (const int64_t budget : {int64_t{1}, int64_t{1} << 20}) {
      attn->block_bytes = budget;
      attn->sdpa = false;
      const auto blocked = attn->forward(x);
      attn->sdpa = true;
      const auto sdpa = attn->forward(x);
      const std::string what = std::to_string(b) + "x" + std::to_string(h) + "x" +
                               std::to_string(w) + (rel ? " rel" : "") + " budget " +
                               std::to_string(budget);
      EXPECT_LE(max_abs(sdpa - unfused), tol) << what;
      EXPECT_LE(max_abs(sdpa - blocked), tol) << what;
      std::cout << what << ": |sdpa - unfused| " << max_abs(sdpa - unfused) << ", |sdpa - blocked| "
                << max_abs(sdpa - blocked) << std::endl;
    }
  }
}

TEST(EncoderSdpa, TinySamEmbeddingEqualsUnfusedPath) {
  if (!kHaveSdpa)
    GTEST_SKIP() << "LibTorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR
                 << " has no scaled_dot_product_attention (2.1)";
  auto sam = make_sam(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
  c10::InferenceMode guard;
  torch::manual_seed(5);
  const auto x = torch::randn({1, 3, sam->config.image_size, sam->config.image_size});
  auto set = [&](bool blocked, bool sdpa) {
    for (const auto& blk : *sam->image_encoder->blocks) {
      blk->as<EncoderBlockImpl>()->attn->blocked = blocked;
      blk->as<EncoderBlockImpl>()->attn->sdpa = sdpa;
    }
  };
  set(true, true);
  const auto sdpa = sam->image_encoder->forward(x);
  set(false, false);
  const auto unfused = sam->image_encoder->forward(x);
  EXPECT_LE(max_abs(sdpa - unfused), 1e-5 * std::max(1.0, max_abs(unfused)));
}
