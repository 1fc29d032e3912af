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

#include "fused_parallel.h"
#include "samdeblur/models/layers.h"

namespace samdeblur::models {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SDB_FWD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SDB_FWD_INLINE inline __attribute__((always_inline))
#else
#define SDB_FWD_CLONES
#define SDB_FWD_INLINE inline
#endif

using bf16_bits = uint16_t;  // storage of one bfloat16

constexpr int kLanes = 16;           // partial sums per row
constexpr int64_t kGateRows = 1024;  // pixels per float partial sum of the gate mean

SDB_FWD_INLINE float widen(float v) { return v; }
SDB_FWD_INLINE float widen(bf16_bits v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
SDB_FWD_INLINE void narrow(float v, float* out) { *out = v; }
SDB_FWD_INLINE void narrow(float v, bf16_bits* out) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const auto rounded = static_cast<bf16_bits>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
  *out = v != v ? bf16_bits{0x7FC0} : rounded;  // c10::BFloat16's quiet NaN
}

// Channels-last LayerNorm2d of `rows` pixels of c contiguous values each.
template <class T>
SDB_FWD_INLINE void ln_rows(const T* __restrict x, T* __restrict y, const float* __restrict w,
                            const float* __restrict b, int64_t rows, int64_t c, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
    float acc[kLanes] = {};
    int64_t k = 0;
    for (; k + kLanes <= c; k += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += widen(xr[k + j]);
    float s = 0.f;
    for (int j = 0; j < kLanes; ++j) s += acc[j];
    for (; k < c; ++k) s += widen(xr[k]);
    const float mu = s / static_cast<float>(c);
    float acc2[kLanes] = {};
    k = 0;
    for (; k + kLanes <= c; k += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float d = widen(xr[k + j]) - mu;
        acc2[j] += d * d;
      }
    float q = 0.f;
    for (int j = 0; j < kLanes; ++j) q += acc2[j];
    for (; k < c; ++k) {
      const float d = widen(xr[k]) - mu;
      q += d * d;
    }
    const float sd = std::sqrt(q / static_cast<float>(c) + eps);
    for (k = 0; k < c; ++k) narrow(w[k] * ((widen(xr[k]) - mu) / sd) + b[k], yr + k);
  }
}

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

// 16 float lanes as a GCC vector: one zmm register in the AVX-512 clone, two ymm
// in the AVX2 one, four xmm in the baseline. The helpers taking and returning
// them are always inlined (vectors passed by reference), so the ABI warning GCC
// gives for returning one in the non-AVX-512 clones (-Wpsabi) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vfloat16 __attribute__((vector_size(64)));
typedef uint32_t vuint16x32 __attribute__((vector_size(64)));
typedef bf16_bits vbf16x16 __attribute__((vector_size(32)));
// Unaligned views of memory for the vector loads and stores.
typedef float vfloat16_mem __attribute__((vector_size(64), aligned(4), may_alias));
typedef bf16_bits vbf16x16_mem __attribute__((vector_size(32), aligned(2), may_alias));

SDB_FWD_INLINE vfloat16 load16(const float* p) { return *reinterpret_cast<const vfloat16_mem*>(p); }
SDB_FWD_INLINE vfloat16 load16(const bf16_bits* p) {
  const vbf16x16 h = *reinterpret_cast<const vbf16x16_mem*>(p);
  return reinterpret_cast<vfloat16>(__builtin_convertvector(h, vuint16x32) << 16);
}
SDB_FWD_INLINE void store16(const vfloat16& v, float* p) {
  *reinterpret_cast<vfloat16_mem*>(p) = v;
}
SDB_FWD_INLINE void store16(const vfloat16& v, bf16_bits* p) {  // narrow() on 16 lanes
  const auto bits = reinterpret_cast<vuint16x32>(v);
  vuint16x32 rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  rounded = v != v ? vuint16x32{} + 0x7FC0u : rounded;
  *reinterpret_cast<vbf16x16_mem*>(p) = __builtin_convertvector(rounded, vbf16x16);
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

// ---- Float32 1x1 convolutions of few channels, fused with their neighbours ----
// At few channels the NAFBlock's 1x1 convolutions are memory-bound in oneDNN /
// BLAS (K = 32: 57 GFLOP/s on one core against 205 at K = 256), and every
// elementwise pass between them streams the whole activation. The kernels below
// run a tile of kTileRows pixels through LayerNorm2d + conv1 (the head) and
// through conv3 .. the final residual (the tail), the intermediate rows in L1.

constexpr int kTileRows = 6;  // pixels per register tile

// acc[p][j] = bias[j] + the sum over kk < k of a[p * lda + kk] * w[kk][j], for
// the kTileRows pixels of `a` and the NB 16-lane blocks of one weight panel
// (w: k rows of NB * 16 floats; bias: NB * 16 floats).
template <int NB>
SDB_FWD_INLINE void gemm_tile(const float* __restrict a, int64_t lda, int64_t k,
                              const float* __restrict w, const float* __restrict bias,
                              vfloat16 (&acc)[kTileRows][NB]) {
#pragma GCC unroll 8
  for (int j = 0; j < NB; ++j) {
    const vfloat16 b = load16(bias + 16 * j);
#pragma GCC unroll 8
    for (int p = 0; p < kTileRows; ++p) acc[p][j] = b;
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    vfloat16 wv[NB];
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) wv[j] = load16(w + (kk * NB + j) * 16);
#pragma GCC unroll 8
    for (int p = 0; p < kTileRows; ++p) {
      const float v = a[p * lda + kk];
      const vfloat16 av = {v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v};  // one broadcast
#pragma GCC unroll 8
      for (int j = 0; j < NB; ++j) acc[p][j] += av * wv[j];
    }
  }
}

// A 1x1 convolution's weights (N, K) packed for gemm_tile: panel q holds the
// output blocks [q * nb, (q + 1) * nb) of 16 channels each, as [K][nb * 16].
struct PackedConv {
  std::vector<float> w, bias;
  int64_t k = 0, nb = 0, panels = 0;
  const float* panel(int64_t q) const { return w.data() + q * k * nb * 16; }
  const float* panel_bias(int64_t q) const { return bias.data() + q * nb * 16; }
};

// The tile kernels' operands: x / u (head) and input / gate / out (tail) point at
// the first pixel of the image, rows of c (x, input, gate, out) or 2c (u) floats.
struct TileArgs {
  const float *x = nullptr, *gate = nullptr;
  float *u = nullptr, *out = nullptr;
  int64_t c = 0, pixels = 0;
  const float *ln_w = nullptr, *ln_b = nullptr, *beta = nullptr, *gamma = nullptr;
  float eps = 0.f;
  const PackedConv *w1 = nullptr, *w3 = nullptr, *w4 = nullptr, *w5 = nullptr;
};

// `rows` (<= kTileRows) pixels of c floats into a kTileRows x c tile, zero below.
SDB_FWD_INLINE const float* tile_rows(const float* src, int64_t rows, int64_t c, float* tile) {
  if (rows == kTileRows) return src;
  std::memcpy(tile, src, static_cast<size_t>(rows * c) * sizeof(float));
  std::fill(tile + rows * c, tile + kTileRows * c, 0.f);
  return tile;
}

// Head of the pixels [p0, p1): u = conv1(LayerNorm2d(x)), conv1 packed with NB.
template <int NB>
SDB_FWD_INLINE void head_tiles(const TileArgs& t, int64_t p0, int64_t p1, float* ln) {
  const int64_t c = t.c, c2 = 2 * c;
  for (int64_t p = p0; p < p1; p += kTileRows) {
    const int64_t rows = std::min<int64_t>(kTileRows, p1 - p);
    ln_rows(t.x + p * c, ln, t.ln_w, t.ln_b, rows, c, t.eps);
    std::fill(ln + rows * c, ln + kTileRows * c, 0.f);
    for (int64_t q = 0; q < t.w1->panels; ++q) {
      vfloat16 acc[kTileRows][NB];
      gemm_tile<NB>(ln, c, c, t.w1->panel(q), t.w1->panel_bias(q), acc);
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < NB; ++j) store16(acc[r][j], t.u + (p + r) * c2 + (q * NB + j) * 16);
    }
  }
}

// Tail of the pixels [p0, p1): y = input + conv3(gate) * beta (the attention
// scale folded into w3), out = y + conv5(SimpleGate(conv4(LayerNorm2d(y)))) *
// gamma. conv3 and conv5 packed with NBC, conv4 with NB4 and its output channels
// paired (block 2i: channels 16i.., block 2i + 1: c + 16i..), so that the gate is
// the product of neighbouring accumulators. scratch: 4 tiles of kTileRows x c.
template <int NBC, int NB4>
SDB_FWD_INLINE void tail_tiles(const TileArgs& t, int64_t p0, int64_t p1, float* scratch) {
  const int64_t c = t.c;
  float *gs = scratch, *ys = gs + kTileRows * c, *ls = ys + kTileRows * c;
  float* hs = ls + kTileRows * c;
  for (int64_t p = p0; p < p1; p += kTileRows) {
    const int64_t rows = std::min<int64_t>(kTileRows, p1 - p);
    const float* g = tile_rows(t.gate + p * c, rows, c, gs);
    const float* in = t.x + p * c;
    for (int64_t q = 0; q < t.w3->panels; ++q) {
      vfloat16 acc[kTileRows][NBC];
      gemm_tile<NBC>(g, c, c, t.w3->panel(q), t.w3->panel_bias(q), acc);
      for (int r = 0; r < kTileRows; ++r)
        for (int j = 0; j < NBC; ++j) {
          const int64_t k = (q * NBC + j) * 16;
          const vfloat16 a = r < rows ? load16(in + r * c + k) : vfloat16{};
          store16(a + acc[r][j] * load16(t.beta + k), ys + r * c + k);
        }
    }
    ln_rows(ys, ls, t.ln_w, t.ln_b, kTileRows, c, t.eps);
    for (int64_t q = 0; q < t.w4->panels; ++q) {
      vfloat16 acc[kTileRows][NB4];
      gemm_tile<NB4>(ls, c, c, t.w4->panel(q), t.w4->panel_bias(q), acc);
      for (int r = 0; r < kTileRows; ++r)
        for (int i = 0; i < NB4 / 2; ++i)
          store16(acc[r][2 * i] * acc[r][2 * i + 1], hs + r * c + (q * NB4 / 2 + i) * 16);
    }
    for (int64_t q = 0; q < t.w5->panels; ++q) {
      vfloat16 acc[kTileRows][NBC];
      gemm_tile<NBC>(hs, c, c, t.w5->panel(q), t.w5->panel_bias(q), acc);
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < NBC; ++j) {
          const int64_t k = (q * NBC + j) * 16;
          store16(load16(ys + r * c + k) + acc[r][j] * load16(t.gamma + k),
                  t.out + (p + r) * c + k);
        }
    }
  }
}

SDB_FWD_CLONES void head_tiles_f32(const TileArgs& t, int64_t p0, int64_t p1, float* ln) {
  if (t.w1->nb == 4)
    head_tiles<4>(t, p0, p1, ln);
  else
    head_tiles<2>(t, p0, p1, ln);
}
SDB_FWD_CLONES void tail_tiles_f32(const TileArgs& t, int64_t p0, int64_t p1, float* scratch) {
  if (t.w3->nb == 4)
    tail_tiles<4, 4>(t, p0, p1, scratch);
  else if (t.w3->nb == 2)
    tail_tiles<2, 4>(t, p0, p1, scratch);
  else
    tail_tiles<1, 2>(t, p0, p1, scratch);
}

const bf16_bits* bf16_in(const torch::Tensor& t) {
  return reinterpret_cast<const bf16_bits*>(t.data_ptr<at::BFloat16>());
}
bf16_bits* bf16_out(torch::Tensor& t) {
  return reinterpret_cast<bf16_bits*>(t.data_ptr<at::BFloat16>());
}

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

}  // namespace

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

namespace {

// Largest channel counts (C of the block) for the tile kernels and for conv2 +
// gate + mean in one pass in float32. Measured per NAFNet-w32 level at 1280x720
// (one block, 2 threads): the tail pays at C = 32 .. 128, the head at C = 32 .. 64;
// the head at 128 and the tail at 256 were no faster than oneDNN, and at C = 256
// oneDNN's depthwise convolution + the gate kernel beat the one-pass kernel.
constexpr int64_t kTailMaxChannels = 128;
constexpr int64_t kHeadMaxChannels = 64;
constexpr int64_t kDwFusedMaxChannels = 128;
constexpr int64_t kTilesPerTask = 16;

int64_t panel_blocks(int64_t blocks) { return blocks % 4 == 0 ? 4 : blocks % 2 == 0 ? 2 : 1; }

// A 1x1 convolution's weight (N, K, 1, 1) and bias (N) packed for gemm_tile,
// N a multiple of 16; with col_scale (K floats), the weight times diag(col_scale);
// `paired` (N = 2C): blocks interleaved as tail_tiles' conv4 wants them.
PackedConv pack_conv(const torch::Tensor& weight, const torch::Tensor& bias, const float* col_scale,
                     bool paired) {
  const int64_t n = weight.size(0), k = weight.size(1), blocks = n / 16;
  const auto w = weight.detach().to(torch::kFloat).reshape({n, k}).contiguous();
  const auto b = float_vector(bias, n, "1x1 convolution bias");
  const float *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  PackedConv pc;
  pc.k = k;
  pc.nb = panel_blocks(blocks);
  pc.panels = blocks / pc.nb;
  pc.w.resize(static_cast<size_t>(n * k));
  pc.bias.resize(static_cast<size_t>(n));
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t first = paired ? (blk % 2) * (n / 2) + (blk / 2) * 16 : blk * 16;
    const int64_t q = blk / pc.nb, j = blk % pc.nb;
    for (int64_t l = 0; l < 16; ++l) {
      const int64_t ch = first + l;
      pc.bias[static_cast<size_t>(blk * 16 + l)] = bp[ch];
      for (int64_t kk = 0; kk < k; ++kk)
        pc.w[static_cast<size_t>(((q * k + kk) * pc.nb + j) * 16 + l)] =
            col_scale ? wp[ch * k + kk] * col_scale[kk] : wp[ch * k + kk];
    }
  }
  return pc;
}

// The tile kernels take the block: float32, global attention pool, both
// expansions 2, C a multiple of 16 up to `max_channels`, no active dropout.
// The tail (conv3 onwards) takes the global attention's per-image scale only; the head
// (LayerNorm2d + conv1) comes before the pooling and serves the TLC forms too.
bool tiles_apply(const NAFBlockImpl& block, const torch::Tensor& input, int64_t max_channels,
                 bool head = false) {
  const int64_t c = input.size(1);
  const auto& o = block.options;
  return input.scalar_type() == torch::kFloat && c % 16 == 0 && c <= max_channels &&
         (head || !o.local_pool()) && o.dw_expand() == 2 && o.ffn_expand() == 2 &&
         block.conv1->bias.defined() && block.conv3->bias.defined() &&
         block.conv4->bias.defined() && block.conv5->bias.defined() &&
         !(block.is_training() && o.drop_out_rate() > 0);
}

// conv1(norm1(input)) by head_tiles: (N, C, H, W) -> (N, 2C, H, W) channels-last.
torch::Tensor head_cl(NAFBlockImpl& block, const torch::Tensor& input) {
  RECORD_FUNCTION("sdb::nafblock_head_cl", std::vector<c10::IValue>());
  const int64_t c = input.size(1), pixels = input.size(0) * input.size(2) * input.size(3);
  const auto w1 = pack_conv(block.conv1->weight, block.conv1->bias, nullptr, false);
  const auto lw = float_vector(block.norm1->weight, c, "norm1 weight");
  const auto lb = float_vector(block.norm1->bias, c, "norm1 bias");
  auto u = empty_cl(input, 2 * c, input.size(2), input.size(3));
  TileArgs t;
  t.x = input.data_ptr<float>();
  t.u = u.data_ptr<float>();
  t.c = c;
  t.ln_w = lw.data_ptr<float>();
  t.ln_b = lb.data_ptr<float>();
  t.eps = static_cast<float>(block.norm1->eps);
  t.w1 = &w1;
  const int64_t tiles = (pixels + kTileRows - 1) / kTileRows;
  detail::parallel_for(0, tiles, kTilesPerTask, [&](int64_t begin, int64_t end) {
    std::vector<float> ln(static_cast<size_t>(kTileRows * c));
    head_tiles_f32(t, begin * kTileRows, std::min(end * kTileRows, pixels), ln.data());
  });
  return u;
}

// conv3(gate * scale) .. the block's output by tail_tiles: input, gate (N, C, H,
// W) channels-last, scale (N, C, 1, 1) float32 -> (N, C, H, W) channels-last.
torch::Tensor tail_cl(NAFBlockImpl& block, const torch::Tensor& input, const torch::Tensor& gate,
                      const torch::Tensor& scale) {
  RECORD_FUNCTION("sdb::nafblock_tail_cl", std::vector<c10::IValue>());
  const int64_t n = input.size(0), c = input.size(1), hw = input.size(2) * input.size(3);
  TORCH_CHECK(gate.sizes() == input.sizes() && forward_kernels_apply(gate) &&
                  gate.scalar_type() == torch::kFloat && scale.numel() == n * c,
              "nafblock tail: expected a float32 channels-last gate ", input.sizes(),
              " and scale (", n, ", ", c, ", 1, 1), got ", gate.sizes(), " and ", scale.sizes());
  const auto w4 = pack_conv(block.conv4->weight, block.conv4->bias, nullptr, true);
  const auto w5 = pack_conv(block.conv5->weight, block.conv5->bias, nullptr, false);
  const auto s = scale.detach().to(torch::kFloat).contiguous();
  const auto lw = float_vector(block.norm2->weight, c, "norm2 weight");
  const auto lb = float_vector(block.norm2->bias, c, "norm2 bias");
  const auto beta = float_vector(block.beta, c, "beta");
  const auto gamma = float_vector(block.gamma, c, "gamma");
  auto out = empty_cl(input, c, input.size(2), input.size(3));
  TileArgs t;
  t.c = c;
  t.ln_w = lw.data_ptr<float>();
  t.ln_b = lb.data_ptr<float>();
  t.eps = static_cast<float>(block.norm2->eps);
  t.beta = beta.data_ptr<float>();
  t.gamma = gamma.data_ptr<float>();
  t.w4 = &w4;
  t.w5 = &w5;
  const int64_t tiles = (hw + kTileRows - 1) / kTileRows;
  for (int64_t img = 0; img < n; ++img) {  // conv3's weights times this image's scale
    const auto w3 =
        pack_conv(block.conv3->weight, block.conv3->bias, s.data_ptr<float>() + img * c, false);
    t.w3 = &w3;
    t.x = input.data_ptr<float>() + img * hw * c;
    t.gate = gate.data_ptr<float>() + img * hw * c;
    t.out = out.data_ptr<float>() + img * hw * c;
    detail::parallel_for(0, tiles, kTilesPerTask, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(static_cast<size_t>(4 * kTileRows * c));
      tail_tiles_f32(t, begin * kTileRows, std::min(end * kTileRows, hw), scratch.data());
    });
  }
  return out;
}

// x itself when the kernels take it (a channels-last convolution's output always
// is), otherwise a channels-last copy.
torch::Tensor as_cl(torch::Tensor x) {
  return forward_kernels_apply(x) ? x : x.contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

bool nafblock_tile_kernels_apply(const NAFBlockImpl& block, const torch::Tensor& input) {
  return forward_kernels_apply(input) && tiles_apply(block, input, kTailMaxChannels);
}

torch::Tensor nafblock_forward_cl(NAFBlockImpl& block, const torch::Tensor& input) {
  check_input(input, "nafblock_forward_cl");
  const int64_t c = input.size(1);
  auto x = tiles_apply(block, input, kHeadMaxChannels, /*head=*/true)
               ? head_cl(block, input)
               : as_cl(block.conv1(layer_norm_2d_cl(input, block.norm1->weight, block.norm1->bias,
                                                    block.norm1->eps)));  // (N, 2C', H, W)
  auto& conv3 = *block.conv3;
  if (block.options.local_pool()) {
    // TLC: the depthwise convolution and the gate as for the global form (the mean
    // unused), then the local means: a (N, C', H, W) scale map, multiplied in place.
    auto gate = x.scalar_type() == torch::kFloat && c <= kDwFusedMaxChannels
                    ? dwconv_gate_and_mean_cl(x, block.conv2->weight, block.conv2->bias).first
                    : simple_gate_cl(as_cl(block.conv2(x)));
    x = conv3.forward(gate.mul_(block.sca->forward(gate)));
  } else {
    // conv2 (depthwise 3x3), the gate and its mean: (N, C', H, W), (N, C', 1, 1)
    // float32. In one pass for float32 up to kDwFusedMaxChannels; otherwise (and
    // for bfloat16: widening bf16 costs two more instructions per load in the
    // fused loop) oneDNN's depthwise convolution and then the gate kernel
    // measured faster.
    auto [gate, mean] = x.scalar_type() == torch::kFloat && c <= kDwFusedMaxChannels
                            ? dwconv_gate_and_mean_cl(x, block.conv2->weight, block.conv2->bias)
                            : gate_and_mean_cl(as_cl(block.conv2(x)));
    const auto scale = block.sca->at<torch::nn::Conv2dImpl>(1).forward(mean.to(x.scalar_type()));
    // conv3 .. the output in tiles (scale folded into conv3 per image).
    if (tiles_apply(block, input, kTailMaxChannels)) return tail_cl(block, input, gate, scale);
    if (gate.size(0) == 1) {
      // conv3(g * s) with s folded into the weights: (C, C', 1, 1) * (1, C', 1, 1).
      x = torch::conv2d(gate, conv3.weight * scale, conv3.bias);
    } else {
      x = conv3.forward(gate.mul_(scale));
    }
  }
  x = as_cl(block.dropout1.forward(x));
  const auto y = scaled_residual_cl(input, x, block.beta);  // input + x * beta
  x = block.conv4(layer_norm_2d_cl(y, block.norm2->weight, block.norm2->bias, block.norm2->eps));
  x = as_cl(block.dropout2.forward(block.conv5(simple_gate_cl(as_cl(x)))));
  return scaled_residual_cl(y, x, block.gamma);  // y + x * gamma
}

}  // namespace samdeblur::models
