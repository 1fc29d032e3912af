// softmax_rel_pos_ (include/samdeblur/sam/attention_kernels.h), the encoder attention's fused
// relative-position bias + softmax, against the reference's arithmetic
// ((scores + rel_h + rel_w).softmax(-1)) and against the softmax in double.
#include "samdeblur/sam/attention_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>

using namespace samdeblur::sam;

namespace {

// The reference's biased scores, (nb, r, qw, kh * kw) + rel_h + rel_w, in float.
torch::Tensor biased(const torch::Tensor& s, const torch::Tensor& rel_h,
                     const torch::Tensor& rel_w) {
  const int64_t kh = rel_h.size(3), kw = rel_w.size(3);
  auto a = s.view({s.size(0), s.size(1), s.size(2), kh, kw});
  return (a + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape(s.sizes());
}

// Relative error against the softmax in double, outputs >= 1e-30 (the smaller ones are
// absolute-error cases).
double relative_error_vs_double(const torch::Tensor& got, const torch::Tensor& input) {
  const auto exact = input.to(torch::kDouble).softmax(-1);
  const auto big = exact >= 1e-30;
  return ((got.to(torch::kDouble) - exact).abs() / exact.clamp_min(1e-30))
      .masked_select(big)
      .max()
      .item<double>();
}

}  // namespace

TEST(SoftmaxRelPos, EqualsTheReferenceWithPermutedBiasViews) {
  torch::manual_seed(3);
  // Window-like (14 x 14 keys), global-like (64 x 64) and odd sizes (rows not a multiple of
  // the 16 lanes), scores at two scales (sigma 30 puts most of each row below e^-87).
  for (const auto& [nb, r, qw, kh, kw] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{3, 2, 14, 14, 14},
        {2, 1, 64, 64, 64},
        {2, 3, 5, 3, 7},
        {1, 1, 1, 1, 1}}) {
    for (const double sigma : {1.0, 30.0}) {
      const auto s = torch::randn({nb, r, qw, kh * kw}) * sigma;
      // The encoder's layouts: rel_h from (r, nb, qw, kh), rel_w from (qw, nb, r, kw).
      const auto rel_h = torch::randn({r, nb, qw, kh}).permute({1, 0, 2, 3});
      const auto rel_w = torch::randn({qw, nb, r, kw}).permute({1, 2, 0, 3});
      const auto expected = biased(s, rel_h, rel_w).softmax(-1);
      auto got = s.clone();
      softmax_rel_pos_(got, rel_h, rel_w);
      const std::string what = std::to_string(nb) + "x" + std::to_string(r) + "x" +
                               std::to_string(qw) + " keys " + std::to_string(kh) + "x" +
                               std::to_string(kw) + " sigma " + std::to_string(sigma);
      EXPECT_LE((got - expected).abs().max().item<double>(), 1e-6) << what;
      EXPECT_LE(relative_error_vs_double(got, biased(s, rel_h, rel_w)), 1e-5) << what;
      const auto sums = got.sum(-1);
      EXPECT_TRUE(torch::allclose(sums, torch::ones_like(sums), 0, 1e-5)) << what;
    }
  }
}

TEST(SoftmaxRelPos, PlainSoftmaxWithinAFewUlpOfDouble) {
  torch::manual_seed(4);
  for (const int64_t n : {1, 2, 15, 16, 17, 196, 4096}) {
    const auto x = torch::randn({37, n}) * 4;
    auto got = x.clone();
    softmax_rel_pos_(got);
    // e^x within 2 ulp, then a sum of n terms and one product: a few ulp of float, and no
    // further from the exact softmax than ATen's float softmax (measured: 3.1e-6 for ATen
    // where this kernel is within 2e-6).
    const double ours = relative_error_vs_double(got, x);
    const double aten = relative_error_vs_double(x.softmax(-1), x);
    EXPECT_LE(ours, 2e-6) << "n " << n;
    EXPECT_LE(ours, aten + 5e-7) << "n " << n;
    EXPECT_LE((got - x.softmax(-1)).abs().max().item<double>(), 4e-6) << "n " << n;
  }
}

TEST(SoftmaxRelPos, ExpAcrossTheWholeRangeOfDifferences) {
  // Row [0, d]: outputs 1 / (1 + e^d) and e^d / (1 + e^d) for d from -87 to 0, so e^d itself
  // is read back through the second output to within float rounding.
  const auto d = torch::linspace(-87, 0, 20001);
  auto rows = torch::stack({torch::zeros_like(d), d}, 1);
  softmax_rel_pos_(rows);
  const auto dd = d.to(torch::kDouble);
  const auto expected = dd.exp() / (1 + dd.exp());
  const auto rel = ((rows.select(1, 1).to(torch::kDouble) - expected).abs() / expected).max();
  EXPECT_LE(rel.item<double>(), 4 * std::numeric_limits<float>::epsilon());
}

TEST(SoftmaxRelPos, NoSubnormalOutputsAndNanRowsStayNan) {
  auto s = torch::tensor({0.f, -50.f, -86.f, -87.5f, -100.f, -1e4f, -1e30f}).view({1, 7});
  softmax_rel_pos_(s);
  const auto min_normal = std::numeric_limits<float>::min();
  for (int64_t j = 0; j < 7; ++j) {
    const float v = s[0][j].item<float>();
    EXPECT_TRUE(v == 0.f || v >= min_normal) << "output " << j << " = " << v;
  }
  EXPECT_NEAR(s[0][0].item<float>(), 1.f, 1e-7);
  EXPECT_NEAR(s[0][2].item<float>() / std::exp(-86.0), 1.0, 1e-6);
  EXPECT_EQ(s[0][3].item<float>(), 0.f);  // e^-87.5 < FLT_MIN: flushed

  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto with_nan = torch::tensor({1.f, nan, 2.f, 0.f, 1.f, 2.f}).view({2, 3});
  softmax_rel_pos_(with_nan);
  EXPECT_TRUE(torch::isnan(with_nan[0]).all().item<bool>());
  EXPECT_TRUE(torch::allclose(with_nan[1], torch::tensor({0.f, 1.f, 2.f}).softmax(0)));
}

TEST(SoftmaxRelPos, RowsOnSeveralThreadsEqualOneThread) {
  torch::manual_seed(5);
  const auto s = torch::randn({2, 4, 64, 196});
  const auto rel_h = torch::randn({2, 4, 64, 14}), rel_w = torch::randn({2, 4, 64, 14});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto one = s.clone();
  softmax_rel_pos_(one, rel_h, rel_w);
  at::set_num_threads(std::max(threads, 2));
  auto many = s.clone();
  softmax_rel_pos_(many, rel_h, rel_w);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, many));
}

TEST(SoftmaxRelPos, RefusesWhatItCannotTake) {
  auto s = torch::randn({2, 3, 4, 6});
  const auto h = torch::randn({2, 3, 4, 2}), w = torch::randn({2, 3, 4, 3});
  auto not_contiguous = torch::randn({6, 4}).t();
  EXPECT_THROW(softmax_rel_pos_(not_contiguous), c10::Error);
  auto doubles = torch::randn({2, 4}, torch::kDouble);
  EXPECT_THROW(softmax_rel_pos_(doubles), c10::Error);
  EXPECT_THROW(softmax_rel_pos_(s, h), c10::Error);                              // rel_w missing
  EXPECT_THROW(softmax_rel_pos_(s, h, torch::randn({2, 3, 4, 4})), c10::Error);  // 2 x 4 != 6
  EXPECT_THROW(softmax_rel_pos_(s, h, torch::randn({2, 3, 6, 3})), c10::Error);  // rows
  EXPECT_THROW(softmax_rel_pos_(s, h, torch::randn({2, 3, 3, 4}).transpose(2, 3)), c10::Error);
  try {
    softmax_rel_pos_(s, h, torch::randn({2, 3, 4, 4}));
    FAIL() << "mismatched keys accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("kh * kw"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(attention_kernels_apply(torch::randn({2, 2}, torch::requires_grad())));
  EXPECT_TRUE(attention_kernels_apply(torch::randn({2, 2})));
}
