#pragma once
// Utilities of the automatic mask generator, mirroring
// segment_anything/utils/amg.py (and torchvision.ops.batched_nms) function by
// function. Golden values: scripts/make_amg_fixtures.py -> tests/data/sam/amg/.
//
// Conventions (as the official code):
//   boxes   : XYXY, int64 for boxes computed from masks, (N, 4)
//   points  : (x, y) float64, (N, 2)
//   masks   : bool (B, H, W), row-major (C order)
//   RLE     : uncompressed COCO RLE in column-major (Fortran) order; counts
//             alternate zeros / ones and always start with a (possibly empty)
//             run of zeros.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <utility>
#include <vector>

namespace samdeblur::sam {

// [x0, y0, x1, y1] (XYXY) or [x, y, w, h] (XYWH), in pixels.
using Box = std::array<int64_t, 4>;

// Uncompressed RLE: {"size": [h, w], "counts": [...]}.
struct Rle {
  int64_t h = 0, w = 0;
  std::vector<int64_t> counts;
  bool operator==(const Rle& o) const { return h == o.h && w == o.w && counts == o.counts; }
};

// COCO compressed RLE (pycocotools mask.frPyObjects + counts.decode()).
struct CocoRle {
  int64_t h = 0, w = 0;
  std::string counts;
};

// ---- point grids --------------------------------------------------------
// (n*n, 2) float64 grid of (x, y) in [0, 1]: the centres of an n x n tiling,
// x varying fastest (amg.build_point_grid; np.linspace semantics, last = stop).
torch::Tensor build_point_grid(int64_t n_per_side);
// One grid per crop layer; layer i has int(n_per_side / scale_per_layer**i) points per side.
std::vector<torch::Tensor> build_all_layer_point_grids(int64_t n_per_side, int64_t n_layers,
                                                       int64_t scale_per_layer);

// ---- crops ----------------------------------------------------------------
struct CropBoxes {
  std::vector<Box> boxes;           // XYXY; boxes[0] is the whole image
  std::vector<int64_t> layer_idxs;  // crop layer of each box
};
// amg.generate_crop_boxes with the official int()/ceil rounding; crops of a
// layer are listed x0-major (itertools.product(x0s, y0s)).
CropBoxes generate_crop_boxes(int64_t im_h, int64_t im_w, int64_t n_layers, double overlap_ratio);

// ---- mask statistics -------------------------------------------------------
// IoU between masks thresholded at threshold +- offset, for logits (..., H, W).
// As the official: counts are summed over W in int16 (wrapping like torch does
// for W > 32767) then over H in int32; returns float32 (...,). 0/0 gives NaN.
torch::Tensor calculate_stability_score(const torch::Tensor& mask_logits, double mask_threshold,
                                        double threshold_offset);
// XYXY boxes (..., 4) int64 around bool masks (..., H, W); [0,0,0,0] for an
// empty mask. x1/y1 are inclusive (the last column/row of the mask).
torch::Tensor batched_mask_to_box(const torch::Tensor& masks);
// (N,) bool: a box (in crop coordinates) lies within atol of a crop edge that is
// not also an image edge.
torch::Tensor is_box_near_crop_edge(const torch::Tensor& boxes, const Box& crop_box,
                                    const Box& orig_box, double atol = 20.0);

// ---- crop -> image frame ------------------------------------------------
torch::Tensor uncrop_boxes_xyxy(const torch::Tensor& boxes,
                                const Box& crop_box);                           // (N,4) or (B,N,4)
torch::Tensor uncrop_points(const torch::Tensor& points, const Box& crop_box);  // (N,2) or (B,N,2)
// Zero-pads (B, h, w) masks of the crop to (B, orig_h, orig_w).
torch::Tensor uncrop_masks(const torch::Tensor& masks, const Box& crop_box, int64_t orig_h,
                           int64_t orig_w);
Box box_xyxy_to_xywh(const Box& xyxy);

// ---- RLE ------------------------------------------------------------------
// (B, H, W) bool masks (any device) -> one RLE each (amg.mask_to_rle_pytorch).
std::vector<Rle> mask_to_rle(const torch::Tensor& masks);
// RLE -> (H, W) bool CPU tensor (amg.rle_to_mask). Throws Error when the counts
// do not sum to h*w.
torch::Tensor rle_to_mask(const Rle& rle);
// Number of foreground pixels (sum of the odd-indexed counts).
int64_t area_from_rle(const Rle& rle);
// COCO compressed string of an uncompressed RLE, as pycocotools' rleToString:
// each count (minus the count two places earlier, from the 4th count on) is
// written as little-endian 5-bit groups, 0x20 = "more follows", each char + 48.
CocoRle coco_encode_rle(const Rle& rle);
// Inverse of coco_encode_rle (pycocotools' rleFrString). Throws Error on a
// malformed string.
Rle coco_decode_rle(const CocoRle& coco);

// ---- post-processing ------------------------------------------------------
enum class RegionMode { holes, islands };
// amg.remove_small_regions on a (H, W) bool mask: fills holes (mode holes) or
// drops islands (mode islands) whose 8-connected area is < area_thresh; when all
// islands are small the largest one is kept. Returns the mask and whether it
// changed (when unchanged, the input tensor itself is returned).
std::pair<torch::Tensor, bool> remove_small_regions(const torch::Tensor& mask, double area_thresh,
                                                    RegionMode mode);

// torchvision.ops.nms: indices (int64) of the kept boxes, highest score first.
// Scores are sorted descending with a stable sort (ties: lower index first);
// a box is suppressed when IoU > iou_threshold with a kept box. IoU uses
// areas (x1-x0)*(y1-y0) without +1, computed in the boxes' dtype.
torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold);
// torchvision.ops.batched_nms (0.14): NMS per category. As torchvision, inputs
// with more than 4000 coordinates (CPU) take the per-category path whose result
// is re-sorted by torch.sort(descending) of the kept scores; smaller inputs use
// the coordinate-offset trick and return nms() order.
torch::Tensor batched_nms(const torch::Tensor& boxes, const torch::Tensor& scores,
                          const torch::Tensor& idxs, double iou_threshold);

}  // namespace samdeblur::sam
