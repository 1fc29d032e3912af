#pragma once
// Shared inline pieces of the hand-written CPU kernels (private header of
// models/fused_forward.cpp, models/nafblock_tiles.cpp and sam/attention_kernels.cpp): the clone
// attributes, bfloat16 widening and narrowing, the row LayerNorm2d, 16-lane GCC vectors and their
// loads and stores, and three helpers defined in fused_forward.cpp.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace samdeblur::models::detail {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SDB_FWD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SDB_FWD_INLINE inline __attribute__((always_inline))
#else
#define SDB_FWD_CLONES
#define SDB_FWD_INLINE inline
#endif

using bf16_bits = uint16_t;  // storage of one bfloat16

constexpr int kLanes = 16;  // partial sums per row

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

// An empty channels-last (N = like's, c, h, w) tensor with like's dtype and device.
torch::Tensor empty_cl(const torch::Tensor& like, int64_t c, int64_t h, int64_t w);
// Throws unless forward_kernels_apply(x), naming `what`.
void check_input(const torch::Tensor& x, const char* what);
// Per-channel float32 copy of a parameter of any floating dtype (c values, else throws).
torch::Tensor float_vector(const torch::Tensor& p, int64_t c, const char* what);

}  // namespace samdeblur::models::detail
