#pragma once
// SAM-Deblur's mask files, made from the automatic generator's records, and the
// batch job behind sdb-masks.
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

#include <functional>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "samdeblur/sam/mask_generator.h"

namespace samdeblur::sam {

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

// ---- batch job (sdb-masks) ------------------------------------------------
// Produces the masks of one BGR uint8 image as read by io::read_image_bgr.
using MaskSource = std::function<GenerateResult(const cv::Mat& image_bgr)>;
// SAM through `generator`; the image is handed over as BGR (what the official
// script does with cv2.imread) unless rgb is set.
MaskSource make_sam_source(MaskGenerator& generator, bool rgb, bool keep_embedding);
MaskSource make_superpixel_source(const SuperpixelOptions& options, OutputMode mode);

struct MaskJobOptions {
  std::string input;  // an image file or a folder (non-recursive)
  std::string output_dir;
  MaskFileFormat format = MaskFileFormat::label_png;
  ExclusiveOrder exclusive_order = ExclusiveOrder::generator;
  bool save_embeddings = false;  // writes <stem>_embedding.npy (1, 256, 64, 64) float32
  bool progress = true;
};

struct MaskJobSummary {
  int64_t processed = 0, skipped = 0, masks = 0;
  StageTimes times;  // summed over processed images
  double seconds = 0;
};

// Images of `input`: the file itself, or the folder's files with an image
// extension (png, jpg, jpeg, bmp, tif, tiff, webp; case-insensitive), sorted,
// skipping names starting with "mask_" as the official script does. Throws
// FileError when input is missing or holds no image.
std::vector<std::string> list_input_images(const std::string& input);
// <output_dir>/<stem><extension>; the embedding goes to <stem>_embedding.npy.
std::string mask_output_path(const std::string& image, const MaskJobOptions& options);
std::string embedding_output_path(const std::string& image, const MaskJobOptions& options);

// Runs `source` over the images, skipping those whose outputs all exist
// (resume), writing every file atomically, with a progress bar and a log line
// per image (time split into encoder / decoder / post-processing).
MaskJobSummary run_mask_job(const MaskJobOptions& options, const MaskSource& source);

}  // namespace samdeblur::sam
