// The encoder attention's fused relative-position bias + softmax (see
// include/samdeblur/sam/attention_kernels.h). On the pieces of the NAFBlock kernels
// (models/fused_forward_simd.h): 16-lane GCC vectors, cloned for AVX-512 / AVX2 / baseline
// (GCC target_clones), rows spread over LibTorch's OpenMP team (models/fused_parallel.h).
#include "samdeblur/sam/attention_kernels.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../models/fused_forward_simd.h"
#include "../models/fused_parallel.h"

namespace samdeblur::sam {
namespace {

using namespace models::detail;  // SDB_FWD_* clones, 16-lane vfloat16 with load16 / store16

typedef int32_t vint __attribute__((vector_size(kLanes * sizeof(int32_t))));
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

SDB_FWD_INLINE vfloat16 splat(float x) { return vfloat16{} + x; }

// e^v lane-wise. Cody-Waite: v = n ln2 + r with n = round(v / ln2), |r| <= ln2 / 2, ln2 split
// into an exact head and a tail; e^r from Cephes expf's polynomial (1 + r + r^2 P(r), P of
// degree 5); 2^n built in the exponent field. Arguments below -87 give 0 (e^-87 = 1.4 FLT_MIN:
// nothing beside a softmax row's sum >= 1), so that no lane ever computes or returns a
// subnormal: Intel cores take a microcode assist of about a hundred cycles per subnormal
// operand or result, which made this kernel 4x slower than ATen's softmax on random-weight
// SAM scores (and the product @ v after it about 10 % slower). NaN stays NaN; no overflow
// handling: the softmax passes v <= 0 only.
SDB_FWD_INLINE vfloat16 exp_lanes(vfloat16 v) {
  constexpr float kMinArg = -87.f;  // n >= -126 and, at n = -126, r >= 0: a normal result
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: x + kRound - kRound rounds x to an integer
  const vfloat16 x = v > kMinArg ? v : splat(kMinArg);  // NaN -> kMinArg here, restored below
  const vfloat16 n = (x * kLog2e + kRound) - kRound;
  const vfloat16 r = (x - n * kLn2Hi) - n * kLn2Lo;
  vfloat16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vfloat16 y = p * (r * r) + r + 1.f;
  const vint bits = (__builtin_convertvector(n, vint) + 127) << 23;  // n in [-126, 0]: normal
  vfloat16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const vfloat16 e = v < kMinArg ? splat(0.f) : y * scale;
  return v != v ? v : e;
}

// The relative-position rows of one score row: s[i * kw + j] gets (s + h[i]) + w[j].
struct RelRow {
  const float* h = nullptr;
  const float* w = nullptr;
  int64_t kh = 0, kw = 0;
};

// Where rel_h's and rel_w's rows of score row `row` are: both tensors (nb, r, qw, k).
struct RelPos {
  const float *h = nullptr, *w = nullptr;
  int64_t r = 1, qw = 1, kh = 0, kw = 0;
  int64_t hs[3] = {}, ws[3] = {};  // strides of the first three dimensions

  RelRow at(int64_t row) const {
    if (!h) return {};
    const int64_t x = row % qw, y = (row / qw) % r, b = row / (qw * r);
    return {h + b * hs[0] + y * hs[1] + x * hs[2], w + b * ws[0] + y * ws[1] + x * ws[2], kh, kw};
  }
};

SDB_FWD_INLINE void softmax_row(float* __restrict s, int64_t n, const RelRow& rel) {
  if (rel.h) {
    for (int64_t i = 0; i < rel.kh; ++i) {
      float* __restrict si = s + i * rel.kw;
      const float h = rel.h[i];
      const float* __restrict w = rel.w;
      for (int64_t j = 0; j < rel.kw; ++j) si[j] = (si[j] + h) + w[j];
    }
  }
  // The maximum of the numbers; a NaN score stays NaN through e^(s - m) and makes the sum,
  // hence the whole row, NaN (as ATen's softmax).
  const int64_t full = n / kLanes * kLanes, rest = n - full;
  vfloat16 mx = splat(kNegInf);
  for (int64_t k = 0; k < full; k += kLanes) {
    const vfloat16 x = load16(s + k);
    mx = x > mx ? x : mx;
  }
  float m = kNegInf;
  for (int j = 0; j < kLanes; ++j) m = std::max(m, mx[j]);
  for (int64_t t = full; t < n; ++t) m = std::max(m, s[t]);

  vfloat16 acc = splat(0.f);
  for (int64_t k = 0; k < full; k += kLanes) {
    const vfloat16 e = exp_lanes(load16(s + k) - m);
    store16(e, s + k);
    acc += e;
  }
  if (rest > 0) {
    float tail[kLanes];
    for (int j = 0; j < kLanes; ++j) tail[j] = j < rest ? s[full + j] - m : kNegInf;
    const vfloat16 e = exp_lanes(load16(tail));
    store16(e, tail);
    acc += e;
    std::memcpy(s + full, tail, static_cast<size_t>(rest) * sizeof(float));
  }
  float sum = 0.f;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  // ATen's e * (1 / sum), but 0 where that would be subnormal (below FLT_MIN; see exp_lanes).
  const float inv = 1.f / sum, cutoff = std::numeric_limits<float>::min() * sum;
  for (int64_t t = 0; t < n; ++t) s[t] = s[t] < cutoff ? 0.f : s[t] * inv;
}

SDB_FWD_CLONES void softmax_rows(float* s, int64_t row0, int64_t row1, int64_t n,
                                 const RelPos& rel) {
  for (int64_t row = row0; row < row1; ++row) softmax_row(s + row * n, n, rel.at(row));
}

}  // namespace

bool attention_kernels_apply(const torch::Tensor& scores) {
  return scores.defined() && scores.device().is_cpu() && scores.layout() == torch::kStrided &&
         scores.scalar_type() == torch::kFloat && scores.dim() >= 1 && scores.is_contiguous() &&
         !scores.requires_grad();
}

void softmax_rel_pos_(torch::Tensor& scores, const torch::Tensor& rel_h,
                      const torch::Tensor& rel_w) {
  RECORD_FUNCTION("sdb::softmax_rel_pos_", std::vector<c10::IValue>());
  TORCH_CHECK(attention_kernels_apply(scores),
              "softmax_rel_pos_: scores must be a contiguous float32 CPU tensor without "
              "gradient, got ",
              scores.scalar_type(), " ", scores.device(), " ", scores.sizes());
  TORCH_CHECK(rel_h.defined() == rel_w.defined(),
              "softmax_rel_pos_: give both rel_h and rel_w or neither");
  const int64_t n = scores.size(-1);
  if (n == 0 || scores.numel() == 0) return;
  const int64_t rows = scores.numel() / n;
  RelPos rel;
  if (rel_h.defined()) {
    for (const auto* t : {&rel_h, &rel_w})
      TORCH_CHECK(t->dim() == 4 && t->device().is_cpu() && t->scalar_type() == torch::kFloat &&
                      t->layout() == torch::kStrided && (t->size(3) <= 1 || t->stride(3) == 1),
                  "softmax_rel_pos_: rel_h and rel_w must be 4-D float32 CPU tensors (nb, r, "
                  "qw, k) with unit stride in k, got ",
                  t->scalar_type(), " ", t->sizes(), " strides ", t->strides());
    TORCH_CHECK(rel_h.sizes().slice(0, 3) == rel_w.sizes().slice(0, 3) &&
                    rel_h.size(0) * rel_h.size(1) * rel_h.size(2) == rows &&
                    rel_h.size(3) * rel_w.size(3) == n,
                "softmax_rel_pos_: scores ", scores.sizes(), " do not match rel_h ", rel_h.sizes(),
                " and rel_w ", rel_w.sizes(), " (rows nb * r * qw and keys kh * kw)");
    rel.h = rel_h.data_ptr<float>();
    rel.w = rel_w.data_ptr<float>();
    rel.r = rel_h.size(1);
    rel.qw = rel_h.size(2);
    rel.kh = rel_h.size(3);
    rel.kw = rel_w.size(3);
    for (int d = 0; d < 3; ++d) {
      rel.hs[d] = rel_h.stride(d);
      rel.ws[d] = rel_w.stride(d);
    }
  }
  float* s = scores.data_ptr<float>();
  // About 32 KiB of scores per grain: the team's start-up is amortised on small windows.
  const int64_t grain = std::max<int64_t>(1, (int64_t{8} << 10) / n);
  models::detail::parallel_for(0, rows, grain,
                               [&](int64_t b, int64_t e) { softmax_rows(s, b, e, n, rel); });
}

}  // namespace samdeblur::sam
