#include "samdeblur/models/local_pool.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <vector>

#include "fused_parallel.h"
#include "samdeblur/models/fused.h"

namespace samdeblur::models {
namespace {
namespace F = torch::nn::functional;

// local_arch.py AvgPool2d.rs: candidate strides of the fast implementation.
constexpr int64_t kStrides[] = {5, 4, 3, 2, 1};

int64_t first_dividing_stride(int64_t size) {
  for (int64_t r : kStrides) {
    if (size % r == 0) return r;
  }
  return 1;
}

// Window means of the fast (non-equivalent) implementation: the input is sampled
// every (r1, r2) pixels, window sums come from an un-padded 2-D cumsum (so each
// window excludes its first row/column, as in the official code), and the result is
// upsampled back by nearest interpolation.
torch::Tensor fast_local_mean(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t r1 = std::min(o.max_r[0], first_dividing_stride(h));
  const int64_t r2 = std::min(o.max_r[1], first_dividing_stride(w));
  auto s = x.slice(2, 0, h, r1).slice(3, 0, w, r2).cumsum(-1).cumsum(-2);
  const int64_t sh = s.size(2), sw = s.size(3);
  const int64_t k1 = std::min(sh - 1, o.kernel_size[0] / r1);
  const int64_t k2 = std::min(sw - 1, o.kernel_size[1] / r2);
  TORCH_CHECK(k1 > 0 && k2 > 0, "LocalAvgPool2d(fast_imp): empty window (k1=", k1, ", k2=", k2,
              ") for input ", x.sizes(), " and kernel (", o.kernel_size[0], ", ", o.kernel_size[1],
              ")");
  auto out =
      (s.slice(2, 0, sh - k1).slice(3, 0, sw - k2) - s.slice(2, 0, sh - k1).slice(3, k2, sw) -
       s.slice(2, k1, sh).slice(3, 0, sw - k2) + s.slice(2, k1, sh).slice(3, k2, sw)) /
      static_cast<double>(k1 * k2);
  return F::interpolate(
      out, F::InterpolateFuncOptions()
               .scale_factor(std::vector<double>{static_cast<double>(r1), static_cast<double>(r2)})
               .mode(torch::kNearest));
}

// Exact local means over min(kernel, size) windows, stride 1, no padding.
torch::Tensor exact_local_mean(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  const int64_t h = x.size(2), w = x.size(3);
  auto s = x.cumsum(-1).cumsum(-2);
  s = torch::constant_pad_nd(s, {1, 0, 1, 0}, 0);  // zero row/column in front
  const int64_t k1 = std::min(h, o.kernel_size[0]);
  const int64_t k2 = std::min(w, o.kernel_size[1]);
  const int64_t sh = h + 1, sw = w + 1;
  auto s1 = s.slice(2, 0, sh - k1).slice(3, 0, sw - k2);
  auto s2 = s.slice(2, 0, sh - k1).slice(3, k2, sw);
  auto s3 = s.slice(2, k1, sh).slice(3, 0, sw - k2);
  auto s4 = s.slice(2, k1, sh).slice(3, k2, sw);
  // (s4 + s1 - s2 - s3) / (k1 * k2) with the same operations in the same order, in place
  // after the first sum: one full-size temporary instead of four alive at once (4 GB in the
  // first level's channel attention at 3840x2160).
  auto out = s4 + s1;
  return out.sub_(s2).sub_(s3).div_(static_cast<double>(k1 * k2));
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SDB_POOL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SDB_POOL_CLONES
#endif

// The integral-image kernels below compute exact_local_mean's numbers bit for bit on
// float32 CPU tensors, in NCHW or channels-last, without its passes through memory:
// ATen 1.13's CPU cumsum accumulates a float run in double and rounds each prefix to
// float (acc_type<float, false> is double), walking one run at a time (the H-direction
// run strided by a row); here the same double sums run over many independent runs at
// once along the contiguous dimension. The window difference ((s4 + s1) - s2) - s3, the
// division by k1 * k2 (a float) and the replicate padding are then one pass that reads
// the integral image where the padded pixel's window lies.

// Channels-last: S (rows + 1) x (cols + 1) x lanes, row 0 and column 0 zero: S[r + 1][c + 1]
// = float(sum over columns <= c of x[r][.]), x (rows x cols x lanes) contiguous. Rows
// [r0, r1).
SDB_POOL_CLONES void prefix_rows(const float* x, float* s, int64_t cols, int64_t lanes, int64_t r0,
                                 int64_t r1) {
  std::vector<double> acc(static_cast<size_t>(lanes));
  const int64_t s_row = (cols + 1) * lanes;
  for (int64_t r = r0; r < r1; ++r) {
    std::fill(acc.begin(), acc.end(), 0.0);
    float* out = s + (r + 1) * s_row;
    std::fill(out, out + lanes, 0.0f);
    for (int64_t c = 0; c < cols; ++c) {
      const float* in = x + (r * cols + c) * lanes;
      float* o = out + (c + 1) * lanes;
      for (int64_t l = 0; l < lanes; ++l) {
        acc[l] += static_cast<double>(in[l]);
        o[l] = static_cast<float>(acc[l]);
      }
    }
  }
}

// Prefix sums down the rows of S (in place), lanes [l0, l1) of every row.
SDB_POOL_CLONES void prefix_columns(float* s, int64_t rows, int64_t row_len, int64_t l0,
                                    int64_t l1) {
  std::vector<double> acc(static_cast<size_t>(l1 - l0), 0.0);
  for (int64_t r = 1; r <= rows; ++r) {
    float* row = s + r * row_len + l0;
    for (int64_t l = 0; l < l1 - l0; ++l) {
      acc[l] += static_cast<double>(row[l]);
      row[l] = static_cast<float>(acc[l]);
    }
  }
}

// NCHW rows: `rows` runs of `cols` contiguous floats, `x_row` apart, into S rows
// (cols + 1 floats, column 0 zero). Sixteen runs advance together: sixteen independent
// double sums per column instead of one dependent chain.
SDB_POOL_CLONES void prefix_rows_nchw(const float* x, int64_t x_row, float* s, int64_t cols,
                                      int64_t rows) {
  constexpr int64_t kRuns = 16;
  const int64_t s_row = cols + 1;
  for (int64_t r0 = 0; r0 < rows; r0 += kRuns) {
    const int64_t runs = std::min(kRuns, rows - r0);
    double acc[kRuns] = {};
    for (int64_t l = 0; l < runs; ++l) s[(r0 + l) * s_row] = 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t l = 0; l < runs; ++l) {
        acc[l] += static_cast<double>(x[(r0 + l) * x_row + c]);
        s[(r0 + l) * s_row + c + 1] = static_cast<float>(acc[l]);
      }
    }
  }
}

// Output row `h` (cols_out pixels x lanes): the window mean of S at the clamped window
// position, ((s4 + s1) - s2) - s3 over k1 x k2, divided by k1 * k2 in float. The
// un-padded means are one contiguous run of ow x lanes floats; the replicate padding
// copies the first and last pixel's values.
struct WindowGeometry {
  int64_t k1, k2, oh, ow, top, left;
};
SDB_POOL_CLONES void window_row(const float* s, int64_t row_len, int64_t lanes,
                                const WindowGeometry& g, int64_t h, int64_t cols_out, float* out) {
  const float area = static_cast<float>(g.k1 * g.k2);
  const int64_t i = std::clamp<int64_t>(h - g.top, 0, g.oh - 1);
  const float* s1 = s + i * row_len;
  const float* s3 = s + (i + g.k1) * row_len;
  const float* s2 = s1 + g.k2 * lanes;
  const float* s4 = s3 + g.k2 * lanes;
  float* o = out + g.left * lanes;
  const int64_t run = g.ow * lanes;
  for (int64_t t = 0; t < run; ++t) o[t] = (s4[t] + s1[t] - s2[t] - s3[t]) / area;
  for (int64_t w = 0; w < g.left; ++w) std::copy(o, o + lanes, out + w * lanes);
  for (int64_t w = g.left + g.ow; w < cols_out; ++w)
    std::copy(o + run - lanes, o + run, out + w * lanes);
}

// exact_local_mean (+ the replicate padding when auto_pad) for a float32 CPU tensor in
// NCHW or channels-last layout; the result has the input's layout.
torch::Tensor integral_local_mean(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  RECORD_FUNCTION("sdb::local_mean", std::vector<c10::IValue>());
  const bool cl = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  WindowGeometry g{std::min(h, o.kernel_size[0]), std::min(w, o.kernel_size[1]), 0, 0, 0, 0};
  g.oh = h + 1 - g.k1;
  g.ow = w + 1 - g.k2;
  const int64_t out_h = o.auto_pad ? h : g.oh, out_w = o.auto_pad ? w : g.ow;
  if (o.auto_pad) {
    g.top = (h - g.oh) / 2;
    g.left = (w - g.ow) / 2;
  }
  auto out = torch::empty({n, c, out_h, out_w},
                          x.options().memory_format(cl ? at::MemoryFormat::ChannelsLast
                                                       : at::MemoryFormat::Contiguous));
  // Per image (channels-last: lanes = channels) or per plane (NCHW: lanes = 1 column).
  const int64_t planes = cl ? n : n * c, lanes = cl ? c : 1;
  const int64_t row_len = (w + 1) * lanes, plane_len = (h + 1) * row_len;
  auto s = torch::empty({planes * plane_len}, x.options());
  const float* xp = x.data_ptr<float>();
  float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t in_plane = h * w * lanes;
  // Along the rows: channels-last one image row at a time (lanes = channels), NCHW 16
  // rows of a plane at a time.
  const int64_t group = cl ? 1 : 16, groups = (h + group - 1) / group;
  for (int64_t p = 0; p < planes; ++p) std::fill_n(sp + p * plane_len, row_len, 0.0f);
  detail::parallel_for(0, planes * groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t pg = begin; pg < end; ++pg) {
      const int64_t p = pg / groups, r0 = (pg % groups) * group, r1 = std::min(h, r0 + group);
      if (cl) {
        prefix_rows(xp + p * in_plane, sp + p * plane_len, w, lanes, r0, r1);
      } else {
        prefix_rows_nchw(xp + p * in_plane + r0 * w, w, sp + p * plane_len + (r0 + 1) * row_len, w,
                         r1 - r0);
      }
    }
  });
  // Down the rows: NCHW in blocks of columns per plane; channels-last in blocks of the
  // (columns x channels) row.
  const int64_t block = 256, blocks = (row_len + block - 1) / block;
  detail::parallel_for(0, planes * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t pb = begin; pb < end; ++pb) {
      const int64_t p = pb / blocks, l0 = (pb % blocks) * block;
      prefix_columns(sp + p * plane_len, h, row_len, l0, std::min(row_len, l0 + block));
    }
  });
  detail::parallel_for(0, planes * out_h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t pr = begin; pr < end; ++pr) {
      const int64_t p = pr / out_h, r = pr % out_h;
      window_row(sp + p * plane_len, row_len, lanes, g, r, out_w,
                 op + (p * out_h + r) * out_w * lanes);
    }
  });
  return out;
}

bool integral_kernel_applies(const torch::Tensor& x) {
  return fused_kernels_apply(x) && x.numel() > 0 &&
         !(torch::GradMode::is_enabled() && x.requires_grad());
}

}  // namespace

LocalAvgPool2dOptions tlc_pool_options(int64_t feature_h, int64_t feature_w, int64_t train_h,
                                       int64_t train_w, bool fast_imp) {
  TORCH_CHECK(train_h > 0 && train_w > 0, "tlc_pool_options: train size must be positive");
  // base_size = (int(H * 1.5), int(W * 1.5)) in NAFNetLocal.__init__.
  const auto base_h = static_cast<int64_t>(static_cast<double>(train_h) * 1.5);
  const auto base_w = static_cast<int64_t>(static_cast<double>(train_w) * 1.5);
  LocalAvgPool2dOptions o;
  o.kernel_size = {feature_h * base_h / train_h, feature_w * base_w / train_w};
  o.max_r = {std::max<int64_t>(1, kStrides[0] * feature_h / train_h),
             std::max<int64_t>(1, kStrides[0] * feature_w / train_w)};
  o.fast_imp = fast_imp;
  return o;
}

torch::Tensor local_avg_pool2d(const torch::Tensor& x, const LocalAvgPool2dOptions& o) {
  TORCH_CHECK(x.dim() == 4, "local_avg_pool2d: expected (N, C, H, W), got ", x.sizes());
  // Reduced precision (the bf16 execution): the integral image and the replicate padding
  // in float32. A bf16 running sum over a feature map would lose the window means, and
  // ATen 1.13 has no bf16 replication_pad2d on the CPU.
  if (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf)
    return local_avg_pool2d(x.to(torch::kFloat), o).to(x.scalar_type());
  const int64_t h = x.size(2), w = x.size(3);
  // Early out of the official forward: the window covers the whole feature map.
  if (o.kernel_size[0] >= h && o.kernel_size[1] >= w) {
    return torch::adaptive_avg_pool2d(x, {1, 1});
  }
  if (!o.fast_imp && integral_kernel_applies(x)) return integral_local_mean(x, o);
  auto out = o.fast_imp ? fast_local_mean(x, o) : exact_local_mean(x, o);
  if (o.auto_pad) {
    const int64_t dh = h - out.size(2), dw = w - out.size(3);
    out = F::pad(
        out,
        F::PadFuncOptions({dw / 2, (dw + 1) / 2, dh / 2, (dh + 1) / 2}).mode(torch::kReplicate));
  }
  return out;
}

void LocalAvgPool2dImpl::pretty_print(std::ostream& stream) const {
  stream << "LocalAvgPool2d(kernel_size=[" << options.kernel_size[0] << ", "
         << options.kernel_size[1] << "], fast_imp=" << (options.fast_imp ? "true" : "false")
         << ")";
}

}  // namespace samdeblur::models
