#pragma once
// Mask sources: what turns one image into SAM-Deblur mask records.
//
//   type          source                                    file
//   sam           Segment Anything's automatic generator    src/masks/sam_source.cpp
//   superpixels   SLIC superpixels (weight-free demos)      src/masks/superpixel_source.cpp
//   files         precomputed masks in a folder              src/masks/files_source.cpp
//
// One factory, make_mask_source(), builds any of them from MaskSourceOptions;
// adding a source is one new file (a class deriving from MaskSource and its
// make_* function declared below) plus one line in kMaskSourceTypes
// (src/masks/source.cpp). Sources never write files: the batch job
// (masks/job.h) and the cache (masks/cache.h) encode what they return.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "samdeblur/masks/options.h"
#include "samdeblur/sam/mask_generator.h"
#include "samdeblur/sam/predictor.h"

namespace samdeblur::masks {

class MaskSource {
 public:
  virtual ~MaskSource() = default;
  // Masks of one BGR uint8 image as read by io::read_image_bgr; image_path is
  // the file it came from ("" when unknown).
  virtual sam::GenerateResult generate(const cv::Mat& image_bgr, const std::string& image_path) = 0;
  // One line for logs: "SAM vit_h from X ..." / "SLIC superpixels ...".
  virtual std::string describe() const = 0;
  // Whether a model has been loaded (sources that load lazily; false otherwise).
  virtual bool model_loaded() const { return false; }
  // Text identifying what, besides the image's bytes and the options, decides
  // the masks of image_path (the mask cache key appends it); "" for sources
  // that compute masks from the image alone. The files source: its mask file's hash.
  virtual std::string content_key(const std::string& /*image_path*/) const { return ""; }
};

// A function as a source (tests, custom sources).
using MaskFn = std::function<sam::GenerateResult(const cv::Mat& image_bgr)>;
class FunctionSource : public MaskSource {
 public:
  explicit FunctionSource(MaskFn fn, std::string description = "function")
      : fn_(std::move(fn)), description_(std::move(description)) {}
  sam::GenerateResult generate(const cv::Mat& image_bgr, const std::string&) override {
    return fn_(image_bgr);
  }
  std::string describe() const override { return description_; }

 private:
  MaskFn fn_;
  std::string description_;
};

// Builds the SAM predictor (lazily, on the first image).
using PredictorFactory = std::function<std::unique_ptr<sam::Predictor>()>;

// Run-time settings that are not part of the options (not in any cache key).
struct MaskSourceContext {
  torch::Device device = torch::kCPU;
  bool half = false;  // sam: float16 on CUDA
  // binary_mask, uncompressed_rle (label maps) or coco_rle (coco-json).
  sam::OutputMode output_mode = sam::OutputMode::uncompressed_rle;
  bool keep_embedding = false;  // sam: GenerateResult::image_embedding
  // sam: default make_predictor(options.model_type, options.checkpoint, device, half).
  PredictorFactory predictor_factory;
};

// The valid MaskSourceOptions::type values, in the order of the table above.
const std::vector<std::string>& mask_source_types();

// The one factory. options.type must be one of mask_source_types(): ConfigError
// listing them otherwise. Options are checked here (ConfigError naming the
// field); a SAM model is only loaded on the first generate().
std::unique_ptr<MaskSource> make_mask_source(const MaskSourceOptions& options,
                                             MaskSourceContext context = {});

// ---- the sources (one file each) -------------------------------------------
// SAM, loading the predictor on first use. The image is handed over as BGR
// (what the official script does with cv2.imread) unless options.rgb is set.
std::unique_ptr<MaskSource> make_sam_source(const MaskSourceOptions& options,
                                            MaskSourceContext context);
// SAM over an existing generator (which must outlive the source).
std::unique_ptr<MaskSource> make_sam_source(sam::MaskGenerator& generator, bool rgb,
                                            bool keep_embedding);
// SLIC superpixels (masks/superpixels.h); no image embedding.
std::unique_ptr<MaskSource> make_superpixel_source(const SuperpixelOptions& options,
                                                   sam::OutputMode mode);
// Precomputed masks: for image <dir>/<stem>.<ext>, <folder>/<stem>.png (an
// official label map, sdb-masks --format label-png) or <folder>/<stem>.npz
// (official grouped masks, --format grouped-npz). The records reproduce the
// file exactly: label_map(records) equals a label-map PNG (one record per grey
// value v at the index whose draw_segmask value is v, empty records in between),
// and grouped_masks(label_map(records)) equals a grouped file's masks (group i
// gets grey value i + 1). ConfigError for an empty folder, FileError naming the
// missing (or ambiguous: both .png and .npz) file or a size mismatch.
std::unique_ptr<MaskSource> make_files_source(const FilesSourceOptions& options,
                                              sam::OutputMode mode);

}  // namespace samdeblur::masks
