// Channels-last inference kernels (see include/samdeblur/models/fused_forward.h).
// Like models/fused.cpp, the loops are written for the compiler's vectoriser
// (independent lanes over the contiguous channels) and cloned for AVX-512 /
// AVX2 / baseline (GCC target_clones). bfloat16 is read and written as raw
// 16-bit words: widened by a shift, narrowed with round to nearest even and NaN
// as 0x7FC0, bit for bit what c10::BFloat16 does.
#include "samdeblur/models/fused_forward.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fused_forward_simd.h"
#include "fused_parallel.h"
#include "samdeblur/models/layers.h"

namespace samdeblur::models {
namespace {

using namespace detail;

constexpr int64_t kGateRows = 1024;  // pixels per float partial sum of the gate mean

SDB_FWD_CLONES void ln_rows_f32(const float* x, float* y, const float* w, const float* b,
                                int64_t rows, int64_t c, float eps) {
  ln_rows(x, y, w, b, rows, c, eps);
}
SDB_FWD_CLONES void ln_rows_bf16(const bf16_bits* x, bf16_bits* y, const float* w, const float* b,
                                 int64_t rows, int64_t c, float eps) {
  ln_rows(x, y, w, b, rows, c, eps);
}

// Gate of `rows` pixels (2c values in, c out each); with `sums`, adds the column
// sums of the stored gate values to it (c floats).
template <class T, bool kSums>
SDB_FWD_INLINE void gate_rows(const T* __restrict x, T* __restrict g, float* __restrict sums,
                              int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * 2 * c;
    T* gr = g + r * c;
    for (int64_t k = 0; k < c; ++k) {
      narrow(widen(xr[k]) * widen(xr[c + k]), gr + k);
      if constexpr (kSums) sums[k] += widen(gr[k]);
    }
  }
}

SDB_FWD_CLONES void gate_rows_f32(const float* x, float* g, float* sums, int64_t rows, int64_t c) {
  if (sums)
    gate_rows<float, true>(x, g, sums, rows, c);
  else
    gate_rows<float, false>(x, g, nullptr, rows, c);
}
SDB_FWD_CLONES void gate_rows_bf16(const bf16_bits* x, bf16_bits* g, float* sums, int64_t rows,
                                   int64_t c) {
  if (sums)
    gate_rows<bf16_bits, true>(x, g, sums, rows, c);
  else
    gate_rows<bf16_bits, false>(x, g, nullptr, rows, c);
}

// Output pixels [ow0, ow1) of one row of the depthwise 3x3 convolution (zero
// padding 1) of u (2c channels) and the gate of its two halves:
// g[ow][k] = conv[k] * conv[c + k], conv[k] = bias[k] + the sum of wt[tap][k] * u
// over the taps inside the image, in tap order. rows: the input rows above, at
// and below the output row (nullptr outside the image), each w pixels of 2c
// values; wt: [9][2c] float. With kSums, adds the column sums of the stored gate
// values to `sums` (c floats). Blocks of 16 channels keep both halves' 9 taps in
// registers across the row.
template <class T, bool kSums>
SDB_FWD_INLINE void dw_gate_pixels(const T* const* rows, const float* __restrict wt,
                                   const float* __restrict bias, T* __restrict g,
                                   float* __restrict sums, int64_t w, int64_t c, int64_t ow0,
                                   int64_t ow1) {
  const int64_t c2 = 2 * c, blocked = c / kLanes * kLanes;
  for (int64_t k = 0; k < blocked; k += kLanes) {
    vfloat16 wa[9], wb[9];
    for (int t = 0; t < 9; ++t) {
      wa[t] = load16(wt + t * c2 + k);
      wb[t] = load16(wt + t * c2 + c + k);
    }
    const vfloat16 ba = load16(bias + k), bb = load16(bias + c + k);
    vfloat16 sum = {};
    for (int64_t ow = ow0; ow < ow1; ++ow) {
      vfloat16 a = ba, b = bb;
      if (ow > 0 && ow < w - 1) {
        for (int dy = 0; dy < 3; ++dy) {
          if (!rows[dy]) continue;
          const T* src = rows[dy] + (ow - 1) * c2 + k;
          for (int dx = 0; dx < 3; ++dx) {
            a += wa[dy * 3 + dx] * load16(src + dx * c2);
            b += wb[dy * 3 + dx] * load16(src + dx * c2 + c);
          }
        }
      } else {
        for (int dy = 0; dy < 3; ++dy) {
          if (!rows[dy]) continue;
          for (int dx = 0; dx < 3; ++dx) {
            if (ow + dx - 1 < 0 || ow + dx - 1 >= w) continue;
            const T* src = rows[dy] + (ow + dx - 1) * c2 + k;
            a += wa[dy * 3 + dx] * load16(src);
            b += wb[dy * 3 + dx] * load16(src + c);
          }
        }
      }
      store16(a * b, g + ow * c + k);
      if constexpr (kSums) sum += load16(g + ow * c + k);  // the stored values
    }
    if constexpr (kSums) store16(load16(sums + k) + sum, sums + k);
  }
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    for (int64_t k = blocked; k < c; ++k) {  // channels past the last multiple of 16
      float a = bias[k], b = bias[c + k];
      for (int dy = 0; dy < 3; ++dy) {
        if (!rows[dy]) continue;
        for (int dx = 0; dx < 3; ++dx) {
          if (ow + dx - 1 < 0 || ow + dx - 1 >= w) continue;
          const T* src = rows[dy] + (ow + dx - 1) * c2;
          a += wt[(dy * 3 + dx) * c2 + k] * widen(src[k]);
          b += wt[(dy * 3 + dx) * c2 + c + k] * widen(src[c + k]);
        }
      }
      narrow(a * b, g + ow * c + k);
      if constexpr (kSums) sums[k] += widen(g[ow * c + k]);
    }
  }
}

SDB_FWD_CLONES void dw_gate_pixels_f32(const float* const* rows, const float* wt, const float* bias,
                                       float* g, float* sums, int64_t w, int64_t c, int64_t ow0,
                                       int64_t ow1) {
  dw_gate_pixels<float, true>(rows, wt, bias, g, sums, w, c, ow0, ow1);
}
SDB_FWD_CLONES void dw_gate_pixels_bf16(const bf16_bits* const* rows, const float* wt,
                                        const float* bias, bf16_bits* g, float* sums, int64_t w,
                                        int64_t c, int64_t ow0, int64_t ow1) {
  dw_gate_pixels<bf16_bits, true>(rows, wt, bias, g, sums, w, c, ow0, ow1);
}

// y = a + x * s over `rows` pixels of c values.
template <class T>
SDB_FWD_INLINE void residual_rows(const T* __restrict a, const T* __restrict x,
                                  const float* __restrict s, T* __restrict y, int64_t rows,
                                  int64_t c) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < c; ++k)
      narrow(widen(a[r * c + k]) + widen(x[r * c + k]) * s[k], y + r * c + k);
}

SDB_FWD_CLONES void residual_rows_f32(const float* a, const float* x, const float* s, float* y,
                                      int64_t rows, int64_t c) {
  residual_rows(a, x, s, y, rows, c);
}
SDB_FWD_CLONES void residual_rows_bf16(const bf16_bits* a, const bf16_bits* x, const float* s,
                                       bf16_bits* y, int64_t rows, int64_t c) {
  residual_rows(a, x, s, y, rows, c);
}

// One output row of pixel_shuffle(x, 2) + skip: x points at input row h
// (w_in pixels of 4c values), skip and out at output row 2h + i (2 w_in pixels
// of c values). out[2w + j][k] = x[w][4k + 2i + j] + skip[2w + j][k].
template <class T>
SDB_FWD_INLINE void shuffle_add_row(const T* __restrict x, const T* __restrict skip,
                                    T* __restrict out, int64_t w_in, int64_t c, int64_t i) {
  for (int64_t w = 0; w < w_in; ++w)
    for (int64_t j = 0; j < 2; ++j) {
      const T* xs = x + w * 4 * c + 2 * i + j;
      const int64_t o = (2 * w + j) * c;
      for (int64_t k = 0; k < c; ++k) narrow(widen(xs[4 * k]) + widen(skip[o + k]), out + o + k);
    }
}

SDB_FWD_CLONES void shuffle_add_row_f32(const float* x, const float* skip, float* out, int64_t w_in,
                                        int64_t c, int64_t i) {
  shuffle_add_row(x, skip, out, w_in, c, i);
}
SDB_FWD_CLONES void shuffle_add_row_bf16(const bf16_bits* x, const bf16_bits* skip, bf16_bits* out,
                                         int64_t w_in, int64_t c, int64_t i) {
  shuffle_add_row(x, skip, out, w_in, c, i);
}

const bf16_bits* bf16_in(const torch::Tensor& t) {
  return reinterpret_cast<const bf16_bits*>(t.data_ptr<at::BFloat16>());
}
bf16_bits* bf16_out(torch::Tensor& t) {
  return reinterpret_cast<bf16_bits*>(t.data_ptr<at::BFloat16>());
}

}  // namespace

namespace detail {

torch::Tensor empty_cl(const torch::Tensor& like, int64_t c, int64_t h, int64_t w) {
  return torch::empty({like.size(0), c, h, w},
                      like.options().memory_format(at::MemoryFormat::ChannelsLast));
}

void check_input(const torch::Tensor& x, const char* what) {
  TORCH_CHECK(forward_kernels_apply(x), what,
              ": expected a channels-last float32 or bfloat16 CPU (N, C, H, W) tensor, got ",
              x.sizes(), " ", x.scalar_type(), " strides ", x.strides());
}

// Per-channel float32 copy of a parameter of any floating dtype.
torch::Tensor float_vector(const torch::Tensor& p, int64_t c, const char* what) {
  TORCH_CHECK(p.numel() == c, what, ": expected ", c, " values, got ", p.sizes());
  return p.detach().to(torch::kFloat).contiguous().view({c});
}

}  // namespace detail

bool forward_kernels_apply(const torch::Tensor& x) {
  return x.dim() == 4 && x.device().is_cpu() && x.layout() == torch::kStrided &&
         (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16) &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

torch::Tensor layer_norm_2d_cl(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps) {
  RECORD_FUNCTION("sdb::layer_norm_2d_cl", std::vector<c10::IValue>());
  check_input(x, "layer_norm_2d_cl");
  const int64_t c = x.size(1), rows = x.size(0) * x.size(2) * x.size(3);
  const auto w = float_vector(weight, c, "layer_norm_2d_cl weight");
  const auto b = float_vector(bias, c, "layer_norm_2d_cl bias");
  const float *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  const float e = static_cast<float>(eps);
  auto y = empty_cl(x, c, x.size(2), x.size(3));
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(c, 1));
  detail::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    if (bf16)
      ln_rows_bf16(bf16_in(x) + begin * c, bf16_out(y) + begin * c, wp, bp, end - begin, c, e);
    else
      ln_rows_f32(x.data_ptr<float>() + begin * c, y.data_ptr<float>() + begin * c, wp, bp,
                  end - begin, c, e);
  });
  return y;
}

namespace {

// The gate of x into g; with `partial` (one row of c floats per chunk of
// kGateRows pixels of one image), the chunk's column sums.
void run_gate(const torch::Tensor& x, torch::Tensor& g, float* partial) {
  const int64_t n = x.size(0), c = x.size(1) / 2, hw = x.size(2) * x.size(3);
  const int64_t chunks = (hw + kGateRows - 1) / kGateRows;
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  detail::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t r0 = (i / chunks) * hw + (i % chunks) * kGateRows;
      const int64_t rows = std::min(kGateRows, hw - (i % chunks) * kGateRows);
      float* sums = partial ? partial + i * c : nullptr;
      if (bf16)
        gate_rows_bf16(bf16_in(x) + r0 * 2 * c, bf16_out(g) + r0 * c, sums, rows, c);
      else
        gate_rows_f32(x.data_ptr<float>() + r0 * 2 * c, g.data_ptr<float>() + r0 * c, sums, rows,
                      c);
    }
  });
}

}  // namespace

torch::Tensor simple_gate_cl(const torch::Tensor& x) {
  RECORD_FUNCTION("sdb::simple_gate_cl", std::vector<c10::IValue>());
  check_input(x, "simple_gate_cl");
  TORCH_CHECK(x.size(1) % 2 == 0, "simple_gate_cl: expected an even channel count, got ",
              x.sizes());
  auto g = empty_cl(x, x.size(1) / 2, x.size(2), x.size(3));
  run_gate(x, g, nullptr);
  return g;
}

std::pair<torch::Tensor, torch::Tensor> gate_and_mean_cl(const torch::Tensor& x) {
  RECORD_FUNCTION("sdb::gate_and_mean_cl", std::vector<c10::IValue>());
  check_input(x, "gate_and_mean_cl");
  TORCH_CHECK(x.size(1) % 2 == 0, "gate_and_mean_cl: expected an even channel count, got ",
              x.sizes());
  const int64_t n = x.size(0), c = x.size(1) / 2, hw = x.size(2) * x.size(3);
  const int64_t chunks = (hw + kGateRows - 1) / kGateRows;
  auto g = empty_cl(x, c, x.size(2), x.size(3));
  std::vector<float> partial(static_cast<size_t>(n * chunks * c), 0.f);
  run_gate(x, g, partial.data());
  auto mean = torch::empty({n, c, 1, 1}, x.options().dtype(torch::kFloat));
  float* mp = mean.data_ptr<float>();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t k = 0; k < c; ++k) {
      double s = 0.0;
      for (int64_t i = img * chunks; i < (img + 1) * chunks; ++i)
        s += partial[static_cast<size_t>(i * c + k)];
      mp[img * c + k] = static_cast<float>(s / static_cast<double>(hw));
    }
  return {g, mean};
}

std::pair<torch::Tensor, torch::Tensor> dwconv_gate_and_mean_cl(const torch::Tensor& u,
                                                                const torch::Tensor& weight,
                                                                const torch::Tensor& bias) {
  RECORD_FUNCTION("sdb::dwconv_gate_and_mean_cl", std::vector<c10::IValue>());
  check_input(u, "dwconv_gate_and_mean_cl");
  const int64_t n = u.size(0), c2 = u.size(1), c = c2 / 2, h = u.size(2), w = u.size(3);
  TORCH_CHECK(c2 % 2 == 0 && weight.dim() == 4 && weight.size(0) == c2 && weight.size(1) == 1 &&
                  weight.size(2) == 3 && weight.size(3) == 3 && bias.numel() == c2,
              "dwconv_gate_and_mean_cl: expected u (N, 2C, H, W), weight (2C, 1, 3, 3) and bias "
              "(2C), got ",
              u.sizes(), ", ", weight.sizes(), " and ", bias.sizes());
  const auto wt = weight.detach().to(torch::kFloat).reshape({c2, 9}).t().contiguous();  // [9][2C]
  const auto b = float_vector(bias, c2, "dwconv_gate_and_mean_cl bias");
  const float *wp = wt.data_ptr<float>(), *bp = b.data_ptr<float>();
  auto g = empty_cl(u, c, h, w);
  const bool bf16 = u.scalar_type() == torch::kBFloat16;
  // Column sums per output row, each in float over at most kGateRows pixels.
  std::vector<double> row_sums(static_cast<size_t>(n * h * c), 0.0);
  detail::parallel_for(0, n * h, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sums(static_cast<size_t>(c));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / h, oh = row % h;
      const auto in_row = [&](int64_t ih) { return ((img * h + ih) * w) * c2; };
      const auto out = ((img * h + oh) * w) * c;
      for (int64_t ow0 = 0; ow0 < w; ow0 += kGateRows) {
        const int64_t ow1 = std::min(w, ow0 + kGateRows);
        std::fill(sums.begin(), sums.end(), 0.f);
        if (bf16) {
          const bf16_bits* base = bf16_in(u);
          const bf16_bits* rows[3] = {oh > 0 ? base + in_row(oh - 1) : nullptr, base + in_row(oh),
                                      oh + 1 < h ? base + in_row(oh + 1) : nullptr};
          dw_gate_pixels_bf16(rows, wp, bp, bf16_out(g) + out, sums.data(), w, c, ow0, ow1);
        } else {
          const float* base = u.data_ptr<float>();
          const float* rows[3] = {oh > 0 ? base + in_row(oh - 1) : nullptr, base + in_row(oh),
                                  oh + 1 < h ? base + in_row(oh + 1) : nullptr};
          dw_gate_pixels_f32(rows, wp, bp, g.data_ptr<float>() + out, sums.data(), w, c, ow0, ow1);
        }
        for (int64_t k = 0; k < c; ++k) row_sums[static_cast<size_t>(row * c + k)] += sums[k];
      }
    }
  });
  auto mean = torch::zeros({n, c, 1, 1}, u.options().dtype(torch::kFloat));
  float* mp = mean.data_ptr<float>();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t k = 0; k < c; ++k) {
      double s = 0.0;
      for (int64_t oh = 0; oh < h; ++oh) s += row_sums[static_cast<size_t>((img * h + oh) * c + k)];
      mp[img * c + k] = static_cast<float>(s / static_cast<double>(h * w));
    }
  return {g, mean};
}

torch::Tensor scaled_residual_cl(const torch::Tensor& a, const torch::Tensor& x,
                                 const torch::Tensor& scale) {
  RECORD_FUNCTION("sdb::scaled_residual_cl", std::vector<c10::IValue>());
  check_input(a, "scaled_residual_cl");
  check_input(x, "scaled_residual_cl");
  TORCH_CHECK(a.sizes() == x.sizes() && a.scalar_type() == x.scalar_type(),
              "scaled_residual_cl: operands differ: ", a.sizes(), " ", a.scalar_type(), " and ",
              x.sizes(), " ", x.scalar_type());
  const int64_t c = a.size(1), rows = a.size(0) * a.size(2) * a.size(3);
  const auto s = float_vector(scale, c, "scaled_residual_cl scale");
  const float* sp = s.data_ptr<float>();
  auto y = empty_cl(a, c, a.size(2), a.size(3));
  const bool bf16 = a.scalar_type() == torch::kBFloat16;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(c, 1));
  detail::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    if (bf16)
      residual_rows_bf16(bf16_in(a) + begin * c, bf16_in(x) + begin * c, sp,
                         bf16_out(y) + begin * c, end - begin, c);
    else
      residual_rows_f32(a.data_ptr<float>() + begin * c, x.data_ptr<float>() + begin * c, sp,
                        y.data_ptr<float>() + begin * c, end - begin, c);
  });
  return y;
}

torch::Tensor pixel_shuffle_add_cl(const torch::Tensor& x, const torch::Tensor& skip) {
  RECORD_FUNCTION("sdb::pixel_shuffle_add_cl", std::vector<c10::IValue>());
  check_input(x, "pixel_shuffle_add_cl");
  check_input(skip, "pixel_shuffle_add_cl skip");
  const int64_t n = x.size(0), c = x.size(1) / 4, h = x.size(2), w = x.size(3);
  TORCH_CHECK(x.size(1) % 4 == 0 && skip.size(0) == n && skip.size(1) == c &&
                  skip.size(2) == 2 * h && skip.size(3) == 2 * w &&
                  skip.scalar_type() == x.scalar_type(),
              "pixel_shuffle_add_cl: expected x (N, 4C, H, W) and skip (N, C, 2H, 2W) of one "
              "dtype, got ",
              x.sizes(), " ", x.scalar_type(), " and ", skip.sizes(), " ", skip.scalar_type());
  auto out = empty_cl(skip, c, 2 * h, 2 * w);
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(w * c, 1));
  detail::parallel_for(0, n * 2 * h, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t img = row / (2 * h), oh = row % (2 * h);
      const int64_t in_off = ((img * h + oh / 2) * w) * 4 * c;
      const int64_t out_off = ((img * 2 * h + oh) * 2 * w) * c;
      if (bf16)
        shuffle_add_row_bf16(bf16_in(x) + in_off, bf16_in(skip) + out_off, bf16_out(out) + out_off,
                             w, c, oh % 2);
      else
        shuffle_add_row_f32(x.data_ptr<float>() + in_off, skip.data_ptr<float>() + out_off,
                            out.data_ptr<float>() + out_off, w, c, oh % 2);
    }
  });
  return out;
}

}  // namespace samdeblur::models
