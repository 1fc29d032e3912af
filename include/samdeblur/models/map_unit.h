#pragma once
// MAP unit of SegNAFNet: mask-average pooling of features over SAM masks
// (reference: SegNAFNet_arch.py SegNAFNet.mask_average). For one image with
// features x (C, H, W) and masks m_k carrying value v on their pixels:
//   avg_k      = sum(v * x over mask k) / (v * n_k + 1e-8)
//   result     = sum_k avg_k * m_k                       (avg_k * v on mask k)
//   r          = 1 - clamp(sum_k m_k, 0, 1)             (1 - v on covered pixels of a
//                                                        partition, 1 on uncovered ones)
//   result    += r * sum(r * x) / (sum(r) + 1e-8)
// All functions are differentiable w.r.t. the features and never modify inputs.
#include <torch/torch.h>

#include "samdeblur/models/network.h"

namespace samdeblur::models {

// Label-map path: labels (H, W) int64 in [-1, num_masks). O(H*W*C) with one
// scatter_add over num_masks + 1 segments (the last = uncovered); no (M, H, W, C)
// tensor is built. features: (C, H, W) -> (C, H, W).
torch::Tensor mask_average_labels(const torch::Tensor& features, const torch::Tensor& labels,
                                  int64_t num_masks, double value);

// Dense path for overlapping masks: masks (M, 1, H, W) with 0/1 entries (scaled by
// `value` here), the official formula written as two matmuls. features: (C, H, W).
torch::Tensor mask_average_dense(const torch::Tensor& features, const torch::Tensor& masks,
                                 double value);

// Dispatches on the SegMasks representation. The masks must already have the
// feature map's (padded) size; see pad_masks.
torch::Tensor mask_average(const torch::Tensor& features, const SegMasks& masks);

// Zero-pads the masks at the bottom/right to (height, width): padding pixels are in
// no mask (labels -1, dense 0), as check_mask_size in the reference.
SegMasks pad_masks(const SegMasks& masks, int64_t height, int64_t width);

// Training-time mask dropout: removes floor(p * M) of the M masks, chosen as the
// first entries of torch::randperm(M) drawn from the global generator (so
// torch::manual_seed reproduces it, and the draw sequence equals the official
// torch.randperm(M)[:drop_count] one). randperm is drawn even when nothing is
// dropped, as in the reference. Dropped masks' pixels become uncovered.
// Deviation: the reference zeroes the caller's mask tensor in place; this returns a
// new SegMasks and leaves `masks` untouched.
SegMasks drop_masks(const SegMasks& masks, double p);

}  // namespace samdeblur::models
