// Fused NAFBlock kernels (see include/samdeblur/models/fused.h). The loops are
// written for the compiler's vectoriser: independent lanes (no reassociation of
// a float sum is needed), cloned for AVX-512 / AVX2 / baseline and picked at
// load time (GCC target_clones).
#include "samdeblur/models/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace samdeblur::models {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SDB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SDB_INLINE inline __attribute__((always_inline))
#else
#define SDB_CLONES
#define SDB_INLINE inline
#endif

constexpr int kLanes = 16;           // partial sums per row (channels-last reductions)
constexpr int64_t kBlock = 256;      // pixels per NCHW block
constexpr int64_t kGateRows = 1024;  // pixels per float partial sum of the gate mean

// Sum of n floats with kLanes independent partial sums (inlined into each clone).
SDB_INLINE float lane_sum(const float* __restrict x, int64_t n, float shift) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += x[k + j] - shift;
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) s += x[k] - shift;
  return s;
}

// Sum of squares of (x - mu).
SDB_INLINE float lane_sq_sum(const float* __restrict x, int64_t n, float mu) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[k + j] - mu;
      acc[j] += d * d;
    }
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) {
    const float d = x[k] - mu;
    s += d * d;
  }
  return s;
}

// Channels-last LayerNorm2d: `rows` pixels of c contiguous values each.
SDB_CLONES void ln_rows_channels_last(const float* __restrict x, float* __restrict y,
                                      const float* __restrict w, const float* __restrict b,
                                      int64_t rows, int64_t c, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    const float mu = lane_sum(xr, c, 0.f) / static_cast<float>(c);
    const float sd = std::sqrt(lane_sq_sum(xr, c, mu) / static_cast<float>(c) + eps);
    for (int64_t k = 0; k < c; ++k) yr[k] = w[k] * ((xr[k] - mu) / sd) + b[k];
  }
}

// NCHW LayerNorm2d on `len` <= kBlock consecutive pixels of one image; x and y
// point at channel 0 of the first pixel, channel planes are `plane` apart.
SDB_CLONES void ln_block_nchw(const float* __restrict x, float* __restrict y,
                              const float* __restrict w, const float* __restrict b, int64_t c,
                              int64_t plane, int64_t len, float eps) {
  float mean[kBlock], sd[kBlock];
  for (int64_t p = 0; p < len; ++p) mean[p] = 0.f;
  for (int64_t k = 0; k < c; ++k) {
    const float* xr = x + k * plane;
    for (int64_t p = 0; p < len; ++p) mean[p] += xr[p];
  }
  for (int64_t p = 0; p < len; ++p) {
    mean[p] /= static_cast<float>(c);
    sd[p] = 0.f;
  }
  for (int64_t k = 0; k < c; ++k) {
    const float* xr = x + k * plane;
    for (int64_t p = 0; p < len; ++p) {
      const float d = xr[p] - mean[p];
      sd[p] += d * d;
    }
  }
  for (int64_t p = 0; p < len; ++p) sd[p] = std::sqrt(sd[p] / static_cast<float>(c) + eps);
  for (int64_t k = 0; k < c; ++k) {
    const float* xr = x + k * plane;
    float* yr = y + k * plane;
    const float wk = w[k], bk = b[k];
    for (int64_t p = 0; p < len; ++p) yr[p] = wk * ((xr[p] - mean[p]) / sd[p]) + bk;
  }
}

// Channels-last gate of `rows` pixels (2c values in, c out each); adds the
// column sums of the gate to `sums` (c floats).
SDB_CLONES void gate_rows_channels_last(const float* __restrict x, float* __restrict g,
                                        float* __restrict sums, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * 2 * c;
    float* gr = g + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float v = xr[k] * xr[c + k];
      gr[k] = v;
      sums[k] += v;
    }
  }
}

// NCHW gate of one channel plane: g = a * b over n values; returns their sum.
SDB_CLONES float gate_plane(const float* __restrict a, const float* __restrict b,
                            float* __restrict g, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float v = a[k + j] * b[k + j];
      g[k + j] = v;
      acc[j] += v;
    }
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) {
    g[k] = a[k] * b[k];
    s += g[k];
  }
  return s;
}

bool is_channels_last(const torch::Tensor& x) {
  // A tensor contiguous in both orders (C == 1 or H == W == 1) is read as NCHW.
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

bool fused_kernels_apply(const torch::Tensor& x) {
  return x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         x.layout() == torch::kStrided &&
         (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

torch::Tensor fused_layer_norm_2d(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias, double eps) {
  TORCH_CHECK(fused_kernels_apply(x), "fused_layer_norm_2d: expected a contiguous float32 CPU ",
              "(N, C, H, W) tensor, got ", x.sizes(), " ", x.scalar_type());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(weight.numel() == c && bias.numel() == c, "fused_layer_norm_2d: expected ", c,
              " weights and biases, got ", weight.numel(), " and ", bias.numel());
  const auto w = weight.to(torch::kFloat).contiguous();
  const auto b = bias.to(torch::kFloat).contiguous();
  const float* wp = w.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const float e = static_cast<float>(eps);
  const bool cl = is_channels_last(x);
  auto y = torch::empty_like(x, cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (cl) {
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1));
    at::parallel_for(0, n * hw, grain, [&](int64_t begin, int64_t end) {
      ln_rows_channels_last(xp + begin * c, yp + begin * c, wp, bp, end - begin, c, e);
    });
    return y;
  }
  const int64_t blocks = (hw + kBlock - 1) / kBlock;
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t img = i / blocks, p0 = (i % blocks) * kBlock;
      const int64_t offset = img * c * hw + p0;
      ln_block_nchw(xp + offset, yp + offset, wp, bp, c, hw, std::min(kBlock, hw - p0), e);
    }
  });
  return y;
}

std::pair<torch::Tensor, torch::Tensor> fused_gate_and_mean(const torch::Tensor& x) {
  TORCH_CHECK(fused_kernels_apply(x) && x.size(1) % 2 == 0,
              "fused_gate_and_mean: expected a contiguous float32 CPU (N, 2C, H, W) tensor, got ",
              x.sizes(), " ", x.scalar_type());
  const int64_t n = x.size(0), c = x.size(1) / 2, h = x.size(2), w = x.size(3), hw = h * w;
  const bool cl = is_channels_last(x);
  auto g = torch::empty({n, c, h, w}, x.options().memory_format(cl ? at::MemoryFormat::ChannelsLast
                                                                   : at::MemoryFormat::Contiguous));
  std::vector<double> sums(static_cast<size_t>(n * c), 0.0);
  const float* xp = x.data_ptr<float>();
  float* gp = g.data_ptr<float>();
  if (cl) {
    const int64_t chunks = (hw + kGateRows - 1) / kGateRows;
    std::vector<float> partial(static_cast<size_t>(n * chunks * c), 0.f);
    at::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t img = i / chunks, r0 = (i % chunks) * kGateRows;
        const int64_t rows = std::min(kGateRows, hw - r0);
        gate_rows_channels_last(xp + (img * hw + r0) * 2 * c, gp + (img * hw + r0) * c,
                                partial.data() + i * c, rows, c);
      }
    });
    for (int64_t i = 0; i < n * chunks; ++i)
      for (int64_t k = 0; k < c; ++k)
        sums[static_cast<size_t>((i / chunks) * c + k)] += partial[static_cast<size_t>(i * c + k)];
  } else {
    at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t img = i / c, k = i % c;
        const float* a = xp + (img * 2 * c + k) * hw;
        double s = 0.0;
        for (int64_t p0 = 0; p0 < hw; p0 += kGateRows) {
          const int64_t len = std::min(kGateRows, hw - p0);
          s += gate_plane(a + p0, a + c * hw + p0, gp + i * hw + p0, len);
        }
        sums[static_cast<size_t>(i)] = s;
      }
    });
  }
  auto mean = torch::empty({n, c, 1, 1}, x.options());
  float* mp = mean.data_ptr<float>();
  for (int64_t i = 0; i < n * c; ++i)
    mp[i] = static_cast<float>(sums[static_cast<size_t>(i)] / static_cast<double>(hw));
  return {g, mean};
}

}  // namespace samdeblur::models
