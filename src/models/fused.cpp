// Fused NAFBlock kernels and their hand-written backward (see
// include/samdeblur/models/fused.h). The loops are
// written for the compiler's vectoriser: independent lanes (no reassociation of
// a float sum is needed), cloned for AVX-512 / AVX2 / baseline and picked at
// load time (GCC target_clones).
#include "samdeblur/models/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

#include "fused_parallel.h"
#include "samdeblur/models/layers.h"

namespace samdeblur::models {
namespace {

// sums[img * c + k] += partial[(img * chunks + j) * c + k] over the chunks j, in chunk
// order (a fixed order: results do not depend on the thread count).
void add_chunk_partials(const std::vector<float>& partial, int64_t chunks, int64_t c,
                        std::vector<double>& sums) {
  const auto rows = static_cast<int64_t>(partial.size()) / c;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < c; ++k)
      sums[static_cast<size_t>((i / chunks) * c + k)] += partial[static_cast<size_t>(i * c + k)];
}

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
// `mean` and `sd` (rows floats each) receive the statistics when not null.
SDB_CLONES void ln_rows_channels_last(const float* __restrict x, float* __restrict y,
                                      const float* __restrict w, const float* __restrict b,
                                      float* __restrict mean, float* __restrict stddev,
                                      int64_t rows, int64_t c, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
    const float mu = lane_sum(xr, c, 0.f) / static_cast<float>(c);
    const float sd = std::sqrt(lane_sq_sum(xr, c, mu) / static_cast<float>(c) + eps);
    if (mean != nullptr) {
      mean[r] = mu;
      stddev[r] = sd;
    }
    for (int64_t k = 0; k < c; ++k) yr[k] = w[k] * ((xr[k] - mu) / sd) + b[k];
  }
}

// NCHW LayerNorm2d on `len` <= kBlock consecutive pixels of one image; x and y
// point at channel 0 of the first pixel, channel planes are `plane` apart;
// `mean_out` and `sd_out` (len floats each) receive the statistics when not null.
SDB_CLONES void ln_block_nchw(const float* __restrict x, float* __restrict y,
                              const float* __restrict w, const float* __restrict b,
                              float* __restrict mean_out, float* __restrict sd_out, int64_t c,
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
  if (mean_out != nullptr) {
    for (int64_t p = 0; p < len; ++p) {
      mean_out[p] = mean[p];
      sd_out[p] = sd[p];
    }
  }
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

// ---- backward kernels (training; see the autograd functions below) ----
// With xhat = (x - mean) / sd and g = gy * w, per pixel over its C values:
//   gx = (g - xhat * mean_c(g * xhat) - mean_c(g)) / sd   (arch_util.py LayerNormFunction)
// and the per-channel sums of gy * xhat (weight grad) and gy (bias grad) are
// added to `gw` and `gb` (c floats each, one partial per block of pixels).

// Channels-last: `rows` pixels of c contiguous values each.
SDB_CLONES void ln_backward_rows_channels_last(const float* __restrict x,
                                               const float* __restrict gy, float* __restrict gx,
                                               const float* __restrict w,
                                               const float* __restrict mean,
                                               const float* __restrict stddev, float* __restrict gw,
                                               float* __restrict gb, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    const float* gr = gy + r * c;
    float* gxr = gx + r * c;
    const float mu = mean[r], rs = 1.f / stddev[r];
    float acc_g[kLanes] = {}, acc_gx[kLanes] = {};
    int64_t k = 0;
    for (; k + kLanes <= c; k += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float g = gr[k + j] * w[k + j];
        acc_g[j] += g;
        acc_gx[j] += g * ((xr[k + j] - mu) * rs);
      }
    float mean_g = 0.f, mean_gx = 0.f;
    for (int j = 0; j < kLanes; ++j) {
      mean_g += acc_g[j];
      mean_gx += acc_gx[j];
    }
    for (; k < c; ++k) {
      const float g = gr[k] * w[k];
      mean_g += g;
      mean_gx += g * ((xr[k] - mu) * rs);
    }
    mean_g /= static_cast<float>(c);
    mean_gx /= static_cast<float>(c);
    for (k = 0; k < c; ++k) {
      const float xh = (xr[k] - mu) * rs;
      gxr[k] = rs * (gr[k] * w[k] - xh * mean_gx - mean_g);
      gw[k] += gr[k] * xh;
      gb[k] += gr[k];
    }
  }
}

// NCHW: `len` <= kBlock consecutive pixels of one image, channel planes
// `plane` apart; mean / stddev point at the block's statistics.
SDB_CLONES void ln_backward_block_nchw(const float* __restrict x, const float* __restrict gy,
                                       float* __restrict gx, const float* __restrict w,
                                       const float* __restrict mean, const float* __restrict stddev,
                                       float* __restrict gw, float* __restrict gb, int64_t c,
                                       int64_t plane, int64_t len) {
  float rs[kBlock], mean_g[kBlock], mean_gx[kBlock];
  for (int64_t p = 0; p < len; ++p) {
    rs[p] = 1.f / stddev[p];
    mean_g[p] = 0.f;
    mean_gx[p] = 0.f;
  }
  for (int64_t k = 0; k < c; ++k) {
    const float* xr = x + k * plane;
    const float* gr = gy + k * plane;
    const float wk = w[k];
    for (int64_t p = 0; p < len; ++p) {
      const float g = gr[p] * wk;
      mean_g[p] += g;
      mean_gx[p] += g * ((xr[p] - mean[p]) * rs[p]);
    }
  }
  for (int64_t p = 0; p < len; ++p) {
    mean_g[p] /= static_cast<float>(c);
    mean_gx[p] /= static_cast<float>(c);
  }
  for (int64_t k = 0; k < c; ++k) {
    const float* xr = x + k * plane;
    const float* gr = gy + k * plane;
    float* gxr = gx + k * plane;
    const float wk = w[k];
    float acc_w[kLanes] = {}, acc_b[kLanes] = {};
    int64_t p = 0;
    for (; p + kLanes <= len; p += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const int64_t q = p + j;
        const float xh = (xr[q] - mean[q]) * rs[q];
        gxr[q] = rs[q] * (gr[q] * wk - xh * mean_gx[q] - mean_g[q]);
        acc_w[j] += gr[q] * xh;
        acc_b[j] += gr[q];
      }
    float sw = 0.f, sb = 0.f;
    for (int j = 0; j < kLanes; ++j) {
      sw += acc_w[j];
      sb += acc_b[j];
    }
    for (; p < len; ++p) {
      const float xh = (xr[p] - mean[p]) * rs[p];
      gxr[p] = rs[p] * (gr[p] * wk - xh * mean_gx[p] - mean_g[p]);
      sw += gr[p] * xh;
      sb += gr[p];
    }
    gw[k] += sw;
    gb[k] += sb;
  }
}

// Gate backward. The forward is out = a * b * s (+ a term whose gradient
// reaches the gate as t per channel, the channel-attention mean): per element
// gg = gy * s + t, ga = gg * b, gb = gg * a. The plain SimpleGate has s = 1,
// t = 0 (exact: gg = gy).
// Channels-last: `rows` pixels, 2c values of x (a then b) and c of gy each;
// s, t: c floats.
SDB_CLONES void gate_backward_rows_channels_last(const float* __restrict x,
                                                 const float* __restrict gy, float* __restrict gx,
                                                 const float* __restrict s,
                                                 const float* __restrict t, int64_t rows,
                                                 int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * 2 * c;
    const float* gr = gy + r * c;
    float* gxr = gx + r * 2 * c;
    for (int64_t k = 0; k < c; ++k) {
      const float gg = gr[k] * s[k] + t[k];
      gxr[k] = gg * xr[c + k];
      gxr[c + k] = gg * xr[k];
    }
  }
}

// NCHW: one channel plane of n values.
SDB_CLONES void gate_backward_plane(const float* __restrict a, const float* __restrict b,
                                    const float* __restrict gy, float* __restrict ga,
                                    float* __restrict gb, float s, float t, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float gg = gy[k] * s + t;
    ga[k] = gg * b[k];
    gb[k] = gg * a[k];
  }
}

// The channel attention's scale gradient: sum of gy * a * b. Channels-last:
// adds the column sums of `rows` pixels to `sums` (c floats).
SDB_CLONES void gate_dot_rows_channels_last(const float* __restrict x, const float* __restrict gy,
                                            float* __restrict sums, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * 2 * c;
    const float* gr = gy + r * c;
    for (int64_t k = 0; k < c; ++k) sums[k] += gr[k] * (xr[k] * xr[c + k]);
  }
}

// NCHW: the sum over one plane of n values.
SDB_CLONES float gate_dot_plane(const float* __restrict a, const float* __restrict b,
                                const float* __restrict gy, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += gy[k + j] * (a[k + j] * b[k + j]);
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) s += gy[k] * (a[k] * b[k]);
  return s;
}

bool is_channels_last(const torch::Tensor& x) {
  // A tensor contiguous in both orders (C == 1 or H == W == 1) is read as NCHW.
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::MemoryFormat format_of(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

constexpr int64_t kBackwardRows = 256;  // channels-last pixels per weight-gradient partial

// Sums `parts` rows of `width` float partials (in order, in double) into a
// float32 tensor of `width` values.
torch::Tensor sum_partials(const std::vector<float>& partials, int64_t parts, int64_t width) {
  std::vector<double> acc(static_cast<size_t>(width), 0.0);
  for (int64_t i = 0; i < parts; ++i)
    for (int64_t k = 0; k < width; ++k)
      acc[static_cast<size_t>(k)] += partials[static_cast<size_t>(i * width + k)];
  auto out = torch::empty({width}, torch::kFloat);
  float* op = out.data_ptr<float>();
  for (int64_t k = 0; k < width; ++k) op[k] = static_cast<float>(acc[static_cast<size_t>(k)]);
  return out;
}

}  // namespace

bool fused_kernels_apply(const torch::Tensor& x) {
  return x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         x.layout() == torch::kStrided &&
         (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

namespace {

// fused_layer_norm_2d; with `stats`, also the per-pixel mean and standard
// deviation sqrt(var + eps), each (N, H * W) float32, for the backward.
torch::Tensor layer_norm_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias, double eps,
                                 std::pair<torch::Tensor, torch::Tensor>* stats) {
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
  auto y = torch::empty_like(x, format_of(cl));
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  float* mp = nullptr;
  float* sp = nullptr;
  if (stats != nullptr) {
    *stats = {torch::empty({n, hw}, x.options()), torch::empty({n, hw}, x.options())};
    mp = stats->first.data_ptr<float>();
    sp = stats->second.data_ptr<float>();
  }
  if (cl) {
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1));
    detail::parallel_for(0, n * hw, grain, [&](int64_t begin, int64_t end) {
      ln_rows_channels_last(xp + begin * c, yp + begin * c, wp, bp, mp ? mp + begin : nullptr,
                            sp ? sp + begin : nullptr, end - begin, c, e);
    });
    return y;
  }
  const int64_t blocks = (hw + kBlock - 1) / kBlock;
  detail::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t img = i / blocks, p0 = (i % blocks) * kBlock;
      const int64_t offset = img * c * hw + p0, pixel = img * hw + p0;
      ln_block_nchw(xp + offset, yp + offset, wp, bp, mp ? mp + pixel : nullptr,
                    sp ? sp + pixel : nullptr, c, hw, std::min(kBlock, hw - p0), e);
    }
  });
  return y;
}

// {gx in x's layout, gw (C), gb (C)} of LayerNorm2d for the output gradient gy.
// The weight and bias gradients are summed per block of pixels in float and
// over blocks in double, in a fixed order (deterministic for any thread count).
std::array<torch::Tensor, 3> layer_norm_backward(const torch::Tensor& x, torch::Tensor gy,
                                                 const torch::Tensor& weight,
                                                 const torch::Tensor& mean,
                                                 const torch::Tensor& stddev) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const bool cl = is_channels_last(x);
  gy = gy.to(torch::kFloat).contiguous(format_of(cl));
  const auto w = weight.to(torch::kFloat).contiguous();
  auto gx = torch::empty_like(x, format_of(cl));
  const float* xp = x.data_ptr<float>();
  const float* gp = gy.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* mp = mean.data_ptr<float>();
  const float* sp = stddev.data_ptr<float>();
  float* gxp = gx.data_ptr<float>();
  const int64_t per_image = cl ? 0 : (hw + kBlock - 1) / kBlock;
  const int64_t parts = cl ? (n * hw + kBackwardRows - 1) / kBackwardRows : n * per_image;
  std::vector<float> pw(static_cast<size_t>(parts * c), 0.f), pb(pw.size(), 0.f);
  detail::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* gw = pw.data() + i * c;
      float* gb = pb.data() + i * c;
      if (cl) {
        const int64_t r0 = i * kBackwardRows, rows = std::min(kBackwardRows, n * hw - r0);
        ln_backward_rows_channels_last(xp + r0 * c, gp + r0 * c, gxp + r0 * c, wp, mp + r0, sp + r0,
                                       gw, gb, rows, c);
      } else {
        const int64_t img = i / per_image, p0 = (i % per_image) * kBlock;
        const int64_t offset = img * c * hw + p0, pixel = img * hw + p0;
        ln_backward_block_nchw(xp + offset, gp + offset, gxp + offset, wp, mp + pixel, sp + pixel,
                               gw, gb, c, hw, std::min(kBlock, hw - p0));
      }
    }
  });
  return {gx, sum_partials(pw, parts, c), sum_partials(pb, parts, c)};
}

// Per (image, channel) sums of gy * a * b over the pixels, x = [a, b] (N, 2C, H, W),
// gy (N, C, H, W) in x's layout: (N, C) float32, accumulated as the forward mean.
torch::Tensor gate_dot(const torch::Tensor& x, const torch::Tensor& gy) {
  const int64_t n = x.size(0), c = x.size(1) / 2, hw = x.size(2) * x.size(3);
  const float* xp = x.data_ptr<float>();
  const float* gp = gy.data_ptr<float>();
  std::vector<double> sums(static_cast<size_t>(n * c), 0.0);
  if (is_channels_last(x)) {
    const int64_t chunks = (hw + kGateRows - 1) / kGateRows;
    std::vector<float> partial(static_cast<size_t>(n * chunks * c), 0.f);
    detail::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t img = i / chunks, r0 = (i % chunks) * kGateRows;
        gate_dot_rows_channels_last(xp + (img * hw + r0) * 2 * c, gp + (img * hw + r0) * c,
                                    partial.data() + i * c, std::min(kGateRows, hw - r0), c);
      }
    });
    add_chunk_partials(partial, chunks, c, sums);
  } else {
    detail::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float* a = xp + ((i / c) * 2 * c + i % c) * hw;
        double s = 0.0;
        for (int64_t p0 = 0; p0 < hw; p0 += kGateRows)
          s += gate_dot_plane(a + p0, a + c * hw + p0, gp + i * hw + p0,
                              std::min(kGateRows, hw - p0));
        sums[static_cast<size_t>(i)] = s;
      }
    });
  }
  auto out = torch::empty({n, c}, x.options());
  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < n * c; ++i) op[i] = static_cast<float>(sums[static_cast<size_t>(i)]);
  return out;
}

// Gradient of x = [a, b] (N, 2C, H, W) for gy (N, C, H, W) in x's layout, with
// per (image, channel) scale s and term t, both (N, C) float32 contiguous (see
// gate_backward_plane). Returned in x's layout.
torch::Tensor gate_backward(const torch::Tensor& x, const torch::Tensor& gy, const torch::Tensor& s,
                            const torch::Tensor& t) {
  const int64_t n = x.size(0), c = x.size(1) / 2, hw = x.size(2) * x.size(3);
  const bool cl = is_channels_last(x);
  auto gx = torch::empty_like(x, format_of(cl));
  const float* xp = x.data_ptr<float>();
  const float* gp = gy.data_ptr<float>();
  const float* spp = s.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  float* gxp = gx.data_ptr<float>();
  if (cl) {
    const int64_t chunks = (hw + kGateRows - 1) / kGateRows;
    detail::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t img = i / chunks, r0 = (i % chunks) * kGateRows;
        gate_backward_rows_channels_last(xp + (img * hw + r0) * 2 * c, gp + (img * hw + r0) * c,
                                         gxp + (img * hw + r0) * 2 * c, spp + img * c, tp + img * c,
                                         std::min(kGateRows, hw - r0), c);
      }
    });
    return gx;
  }
  detail::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t a = ((i / c) * 2 * c + i % c) * hw, b = a + c * hw;
      gate_backward_plane(xp + a, xp + b, gp + i * hw, gxp + a, gxp + b, spp[i], tp[i], hw);
    }
  });
  return gx;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// LayerNorm2d with the one-pass forward and a one-pass hand-written backward.
struct FusedLayerNormFunction : public torch::autograd::Function<FusedLayerNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps) {
    std::pair<torch::Tensor, torch::Tensor> stats;
    auto y = layer_norm_forward(x, weight, bias, eps, &stats);
    ctx->save_for_backward({x, weight, stats.first, stats.second});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [gx, gw, gb] = layer_norm_backward(saved[0], grads[0], saved[1], saved[2], saved[3]);
    return {gx, gw.view_as(saved[1]), gb.view_as(saved[1]), torch::Tensor()};
  }
};

// SimpleGate: the ATen forward (exact), the backward written straight into one
// (N, 2C, H, W) gradient (no per-half products and concatenation).
struct FusedGateFunction : public torch::autograd::Function<FusedGateFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return simple_gate(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const auto gy = grads[0].to(torch::kFloat).contiguous(format_of(is_channels_last(x)));
    const auto ones = torch::ones({x.size(0), x.size(1) / 2}, x.options());
    return {gate_backward(x, gy, ones, torch::zeros_like(ones))};
  }
};

// SimpleGate times the channel attention of the NAFBlock:
//   g = a * b, s = conv1x1(mean_hw(g); w, bias), out = g * s.
// Forward as the inference path (fused_gate_and_mean, the 1x1 convolution,
// the scale in place); backward in two passes over the pixels: the scale's
// gradient gs = sum_hw(gy * g), then gx from gy * s + (w^T gs) / HW.
struct FusedGateAttentionFunction : public torch::autograd::Function<FusedGateAttentionFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias) {
    auto [gate, mean] = fused_gate_and_mean(x);      // (N, C, H, W), (N, C, 1, 1)
    auto scale = torch::conv2d(mean, weight, bias);  // (N, C, 1, 1)
    ctx->save_for_backward({x, weight, mean, scale});
    return gate.mul_(scale);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const int64_t n = x.size(0), c = x.size(1) / 2, hw = x.size(2) * x.size(3);
    const auto gy = grads[0].to(torch::kFloat).contiguous(format_of(is_channels_last(x)));
    const auto gs = gate_dot(x, gy);                        // (N, C)
    const auto w = weight.reshape({c, c});                  // (out, in)
    const auto t = gs.mm(w).div_(static_cast<double>(hw));  // (N, C)
    const auto gw = gs.t().mm(saved[2].reshape({n, c})).view(weight.sizes());
    const auto gb = gs.sum(0);
    const auto s = saved[3].reshape({n, c}).contiguous();
    return {gate_backward(x, gy, s, t.contiguous()), gw, gb};
  }
};

bool needs_grad(std::initializer_list<const torch::Tensor*> tensors) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const auto* t : tensors)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

}  // namespace

torch::Tensor fused_layer_norm_2d(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias, double eps) {
  return layer_norm_forward(x, weight, bias, eps, nullptr);
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
    detail::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t img = i / chunks, r0 = (i % chunks) * kGateRows;
        const int64_t rows = std::min(kGateRows, hw - r0);
        gate_rows_channels_last(xp + (img * hw + r0) * 2 * c, gp + (img * hw + r0) * c,
                                partial.data() + i * c, rows, c);
      }
    });
    add_chunk_partials(partial, chunks, c, sums);
  } else {
    detail::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
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

torch::Tensor fused_layer_norm_2d_autograd(const torch::Tensor& x, const torch::Tensor& weight,
                                           const torch::Tensor& bias, double eps) {
  if (!needs_grad({&x, &weight, &bias})) return fused_layer_norm_2d(x, weight, bias, eps);
  TORCH_CHECK(fused_kernels_apply(x), "fused_layer_norm_2d_autograd: expected a contiguous ",
              "float32 CPU (N, C, H, W) tensor, got ", x.sizes(), " ", x.scalar_type());
  return FusedLayerNormFunction::apply(x, weight, bias, eps);
}

torch::Tensor fused_simple_gate_autograd(const torch::Tensor& x) {
  if (!needs_grad({&x})) return simple_gate(x);
  TORCH_CHECK(fused_kernels_apply(x) && x.size(1) % 2 == 0,
              "fused_simple_gate_autograd: expected a contiguous float32 CPU (N, 2C, H, W) "
              "tensor, got ",
              x.sizes(), " ", x.scalar_type());
  return FusedGateFunction::apply(x);
}

torch::Tensor fused_gate_attention_autograd(const torch::Tensor& x, const torch::Tensor& weight,
                                            const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && weight.size(0) * 2 == x.size(1) &&
                  weight.size(1) * 2 == x.size(1) && weight.size(2) == 1 && weight.size(3) == 1 &&
                  bias.numel() == weight.size(0),
              "fused_gate_attention_autograd: expected x (N, 2C, H, W), weight (C, C, 1, 1) and ",
              "bias (C), got ", x.sizes(), ", ", weight.sizes(), ", ", bias.sizes());
  if (!needs_grad({&x, &weight, &bias})) {
    auto [gate, mean] = fused_gate_and_mean(x);
    return gate.mul_(torch::conv2d(mean, weight, bias));
  }
  return FusedGateAttentionFunction::apply(x, weight, bias);
}

namespace {

// rows x c channels-last pixels: out = gy * beta, acc += gy * x per channel.
SDB_CLONES void residual_backward_rows(const float* __restrict x, const float* __restrict gy,
                                       const float* __restrict beta, float* __restrict out,
                                       float* __restrict acc, int64_t rows, int64_t c) {
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t k = 0; k < c; ++k) {
      out[p * c + k] = gy[p * c + k] * beta[k];
      acc[k] += gy[p * c + k] * x[p * c + k];
    }
}

// n values of one NCHW plane: out = gy * scale; returns the float sum of gy * x.
SDB_CLONES float residual_backward_plane(const float* __restrict x, const float* __restrict gy,
                                         float scale, float* __restrict out, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      out[k + j] = gy[k + j] * scale;
      acc[j] += gy[k + j] * x[k + j];
    }
  float s = 0.f;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) {
    out[k] = gy[k] * scale;
    s += gy[k] * x[k];
  }
  return s;
}

// Gradients of out = a + x * beta (beta: C values broadcast over N, H, W) for gy in x's
// layout: gx = gy * beta (the product autograd's addcmul forms, bit for bit), and gbeta =
// sum over N, H, W of gy * x in one pass with gx: per block of pixels in float, over
// blocks in double, in a fixed order (autograd forms the full-size gy * x, then reduces).
std::pair<torch::Tensor, torch::Tensor> scaled_residual_backward(const torch::Tensor& x,
                                                                 const torch::Tensor& gy,
                                                                 const torch::Tensor& beta) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  const bool cl = is_channels_last(x);
  const auto b = beta.detach().to(torch::kFloat).contiguous().view({c});
  auto gx = torch::empty_like(x, format_of(cl));
  const float *xp = x.data_ptr<float>(), *gp = gy.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* op = gx.data_ptr<float>();
  // Rows of C partial sums, summed in row order by sum_partials: channels-last, one row
  // per block of pixels; NCHW, one row per image and block of each plane's pixels.
  const int64_t block = cl ? kBackwardRows : kBlock;
  const int64_t per_plane = (hw + block - 1) / block;
  const int64_t blocks = cl ? (n * hw + block - 1) / block : n * c * per_plane;
  const int64_t rows = cl ? blocks : n * per_plane;
  std::vector<float> partial(static_cast<size_t>(rows * c), 0.0f);
  detail::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (cl) {
        const int64_t p0 = i * block, pixels = std::min(n * hw, p0 + block) - p0;
        residual_backward_rows(xp + p0 * c, gp + p0 * c, bp, op + p0 * c, partial.data() + i * c,
                               pixels, c);
      } else {
        const int64_t plane = i / per_plane, j = i % per_plane;
        const int64_t p0 = plane * hw + j * block;
        const int64_t len = std::min(block, plane * hw + hw - p0);
        partial[static_cast<size_t>(((plane / c) * per_plane + j) * c + plane % c)] =
            residual_backward_plane(xp + p0, gp + p0, bp[plane % c], op + p0, len);
      }
    }
  });
  return {gx, sum_partials(partial, rows, c)};
}

// a + x * beta with the one-pass backward above; the forward is ATen's addcmul.
struct FusedScaledResidualFunction : public torch::autograd::Function<FusedScaledResidualFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& x,
                               const torch::Tensor& beta) {
    ctx->save_for_backward({x, beta});
    return torch::addcmul(a, x, beta);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto gy = grads[0].to(torch::kFloat).contiguous(format_of(is_channels_last(x)));
    auto [gx, gbeta] = scaled_residual_backward(x, gy, saved[1]);
    return {grads[0], gx, gbeta.view_as(saved[1]).to(saved[1].scalar_type())};
  }
};

}  // namespace

torch::Tensor fused_scaled_residual_autograd(const torch::Tensor& a, const torch::Tensor& x,
                                             const torch::Tensor& beta) {
  if (!needs_grad({&a, &x, &beta}) || !fused_kernels_apply(x) || !fused_kernels_apply(a) ||
      a.sizes() != x.sizes() || beta.numel() != x.size(1))
    return torch::addcmul(a, x, beta);
  return FusedScaledResidualFunction::apply(a, x, beta);
}

}  // namespace samdeblur::models
