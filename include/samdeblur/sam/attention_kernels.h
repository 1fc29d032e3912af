#pragma once
// Hand-written CPU kernel of the image encoder's blocked attention (ext: no official
// counterpart): the decomposed relative-position bias and the softmax over one block of
// attention scores in one in-place pass per score row, while the row is in L1, where the
// reference's arithmetic (segment_anything/modeling/image_encoder.py: attn + rel_h + rel_w,
// then attn.softmax(-1)) walks the block three times and allocates the softmax's output.
// Float32 only, no autograd: EncoderAttentionImpl uses it in blocked inference on the CPU and
// keeps the ATen composition everywhere else. See README "Performance (SAM)".
#include <torch/torch.h>

namespace samdeblur::sam {

// True when softmax_rel_pos_ takes `scores`: a contiguous float32 CPU tensor of at least one
// dimension that does not require a gradient.
bool attention_kernels_apply(const torch::Tensor& scores);

// In place on `scores` (..., kh * kw), its rows in the order of rel_h's and rel_w's first three
// dimensions (nb, r, qw): each row becomes softmax((s + rel_h[b, y, x, i]) + rel_w[b, y, x, j])
// over its (i, j) = kh x kw keys, the same additions in the same order as the reference, then
// ATen's softmax arithmetic (max, e^(s - max), 1 / sum, scale) with e^x from a degree-6
// polynomial after Cody-Waite range reduction (within 2 ulp of std::exp on [-87.3, 0]; 0 below,
// where e^x < 2^-126; NaN stays NaN). rel_h (nb, r, qw, kh) and rel_w (nb, r, qw, kw) are float32
// CPU tensors with unit stride in their last dimension (other strides free: the encoder passes
// permuted views); both undefined: the plain softmax over the last dimension. Equal to
// (scores + rel_h + rel_w).softmax(-1) within fp32 rounding
// (tests/sam/attention_kernels_test.cpp). Rows run on the intra-op threads.
void softmax_rel_pos_(torch::Tensor& scores, const torch::Tensor& rel_h = {},
                      const torch::Tensor& rel_w = {});

}  // namespace samdeblur::sam
