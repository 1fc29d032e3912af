// The NAFBlock's float32 tile kernels (see include/samdeblur/models/fused_forward.h:
// nafblock_forward_cl, nafblock_tile_kernels_apply): LayerNorm2d + conv1 and conv3 .. the
// final residual over tiles of a few pixels kept in L1, the 1x1 convolutions as
// register-blocked FMA products on GCC vectors; split from models/fused_forward.cpp.
#include <ATen/record_function.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fused_forward_simd.h"
#include "fused_parallel.h"
#include "samdeblur/models/fused_forward.h"
#include "samdeblur/models/layers.h"

namespace samdeblur::models {
namespace {

using namespace detail;

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

}  // namespace

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
