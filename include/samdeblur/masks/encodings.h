#pragma once
// SAM-Deblur's mask encodings, made from the automatic generator's records
// (the batch job behind sdb-masks is masks/job.h).
//
// label map  : scripts/data_preparation/1_create_masks_with_sam.py draw_segmask.
//              Mask k (generator order) adds 2(k+1) for k < 127 and 2(255-k)-1
//              otherwise (negative for k > 255) to a float32 sum, which is
//              clipped to [0, 255] and cast to uint8. Overlapping masks add up,
//              so one grey value may stand for a union or an intersection of
//              masks, and masks past 127 reuse odd values.
// grouped    : scripts/data_preparation/2_masks_to_grouped_masks.py. One bool
//              mask per distinct grey value of the label map, ordered by value
//              ascending (torch.unique), shape (M, 1, H, W), key "masks" of a
//              compressed .npz. (The official reads the PNG through PIL
//              convert('L') + ToTensor; its unique floats v/255 are ordered like
//              the uint8 values, so grouping the uint8 map is identical.)
// exclusive  : our clean alternative (not in the paper): every pixel belongs to
//              exactly one group. A pixel goes to the first mask covering it in
//              the chosen priority (generator order, i.e. the official output
//              order, or smallest area first); uncovered pixels form the
//              background group. Groups: background (if any pixel is
//              uncovered) then the masks owning at least one pixel, in record
//              order; .npz keys "masks" (M, 1, H, W) bool and "mask_ids" (M,)
//              int64 = record index, -1 for background.
#include <torch/torch.h>

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "samdeblur/sam/mask_generator.h"

namespace samdeblur::masks {

using sam::GenerateResult;
using sam::MaskRecord;

// Grey value that draw_segmask adds for mask index k (may be negative for k > 255).
int64_t segmask_value(int64_t k);
// (h, w) CV_8UC1 label map of the records (their RLEs), exactly draw_segmask.
// Zero records give an all-zero map (the official would fail on masks[0]).
cv::Mat label_map(const std::vector<MaskRecord>& masks, int64_t h, int64_t w);
// (M, 1, H, W) bool, one mask per distinct value of a CV_8UC1 map, ascending.
// values (optional) receives the grey value of each group.
torch::Tensor grouped_masks(const cv::Mat& label_map_u8, std::vector<uint8_t>* values = nullptr);

enum class ExclusiveOrder { generator, smallest_first };
// (h, w) int32: 0 = background, k + 1 = record k owns the pixel.
torch::Tensor exclusive_labels(const std::vector<MaskRecord>& masks, int64_t h, int64_t w,
                               ExclusiveOrder order = ExclusiveOrder::generator);
// Groups of exclusive_labels: masks (M, 1, H, W) bool and mask_ids (M,) int64.
std::pair<torch::Tensor, torch::Tensor> exclusive_masks(const torch::Tensor& labels);

enum class MaskFileFormat { label_png, grouped_npz, exclusive_npz, coco_json };
MaskFileFormat mask_file_format_from_name(
    const std::string& name);  // ConfigError listing valid names
std::string mask_file_format_name(MaskFileFormat format);
std::string mask_file_extension(MaskFileFormat format);  // ".png", ".npz", ".npz", ".json"

// Writes one image's masks atomically. coco_json is the official scripts/amg.py
// record list with COCO RLE segmentations.
void write_mask_file(const std::string& path, MaskFileFormat format, const GenerateResult& result,
                     int64_t h, int64_t w, ExclusiveOrder order = ExclusiveOrder::generator);

// Why an existing file is not a complete mask file of an (h, w) image, "" when
// it is: a label PNG decodes to h x w; an npz holds "masks" (M, 1, h, w) (and,
// exclusive, "mask_ids" (M,)); a COCO json parses as a list of records whose
// segmentations are h x w. Never throws.
std::string mask_file_problem(const std::string& path, MaskFileFormat format, int64_t h, int64_t w);

}  // namespace samdeblur::masks
