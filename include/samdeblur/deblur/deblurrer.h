#pragma once
// samdeblur::Deblurrer: deblur any image with a SAM-Deblur / NAFNet checkpoint,
// masks included, no ground truth and no YAML needed (sdb-deblur is a thin
// shell around it; examples/deblur_example.cpp shows the five lines of use).
//
//   samdeblur::Deblurrer::Options options;
//   options.checkpoint = "SegNAFNet-GoPro.pth";
//   options.masks.type = "superpixels";          // or "sam" + masks.checkpoint, or "files"
//   samdeblur::Deblurrer deblurrer(options);
//   cv::Mat sharp = deblurrer.deblur(cv::imread("blurry.jpg"));
//
// The network is recognised from the checkpoint (deblur/recognise.h) unless
// given (Options::network or a YAML file's network_g). Per image, the network
// input is built by dataset::attach_masks and run by eval::infer and
// io::tensor_to_image, the code of sdb-eval: the same image, masks and
// checkpoint give the same bytes as sdb-eval (tests/deblur/deblurrer_test.cpp).
// Masks are the official label map (masks/encodings.h draw_segmask) of the mask
// source's records: grouped for SegNAFNet*, the 4th input channel for CAT.
// Images larger than a tile run tile by tile (deblur/tiling.h).
#include <torch/torch.h>

#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>

#include "samdeblur/dataset/options.h"
#include "samdeblur/deblur/tiling.h"
#include "samdeblur/masks/options.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/models/network.h"

namespace samdeblur {

namespace masks {
class MaskProvider;
class MaskSource;
}  // namespace masks

class Deblurrer {
 public:
  struct Options {
    std::string checkpoint;  // .pth (BasicSR {'params': ...} or bare) or .safetensors; required
    std::string param_key = "params";
    bool allow_nonfinite = false;  // load NaN / Inf weights with a warning
    // The network: `network` when set, else network_g of the YAML file `config`
    // when set, else recognised from the checkpoint with the TLC choice `tlc`
    // (default true: the official test configs use NAFNetLocal / SegNAFNetLocal).
    std::optional<models::NetworkOptions> network;
    std::string config;
    bool tlc = true;
    std::string device = "cpu";  // cpu | cuda | cuda:N
    int threads = 0;             // torch intra-op threads (process-wide); 0 = torch's choice
    // How the network runs (models/execution.h): precision "fp32" (exact) | "bf16"
    // (CPUs with AVX512-BF16 / AMX-BF16, or CUDA; refused elsewhere), memory_format
    // "auto" (channels_last on the CPU, contiguous on CUDA) | "contiguous" (exact) |
    // "channels_last" (+ fused NAFBlock kernels, fp32 rounding).
    // The same keys as sdb-eval's val.precision / val.memory_format. SAM masks have
    // their own masks.precision.
    std::string precision = "fp32";
    std::string memory_format = models::kInferenceMemoryFormat;
    // Where masks come from when the network needs them: type "" (none: an
    // Error for a network that needs masks), "sam" (checkpoint, model_type,
    // generator, rgb), "superpixels" or "files" (files.folder; image paths only).
    // Encoding: official. A mask-free network ignores them (with a warning).
    masks::MaskSourceOptions masks;
    // Content-keyed mask cache shared with sdb-eval (masks/cache.h), used by
    // deblur_file(); "" = no cache.
    std::string mask_cache_dir;
    dataset::MaskEncoding mask_encoding = dataset::MaskEncoding::official;
    deblur::TileOptions tiles;  // default 512 px tiles, 64 px overlap; tile 0 = whole image
  };

  struct Result {
    cv::Mat image;      // (H, W) CV_8UC3 BGR output
    cv::Mat input;      // the BGR input (deblur_file: as read, EXIF orientation applied)
    cv::Mat label_map;  // (H, W) CV_8UC1 official label map used; empty without masks
    double masks_seconds = 0, network_seconds = 0, io_seconds = 0;  // io: reading (deblur_file)
  };

  // Loads (and recognises) the network and prepares the mask source (a SAM model
  // is loaded on the first image that needs it). Throws Error / FileError /
  // ConfigError naming the checkpoint, config key or option.
  explicit Deblurrer(Options options);
  ~Deblurrer();
  Deblurrer(const Deblurrer&) = delete;
  Deblurrer& operator=(const Deblurrer&) = delete;

  // Deblurs one BGR uint8 image (CV_8UC3, as cv::imread / io::read_image_bgr);
  // masks are computed from it when the network needs them. Not modified.
  cv::Mat deblur(const cv::Mat& bgr);
  // The same with a precomputed official label map (CV_8UC1, the image's size;
  // empty = compute it); returns the label map used and the times.
  Result deblur(const cv::Mat& bgr, const cv::Mat& label_map);
  // Reads the image file (io::read_image_bgr: EXIF orientation applied) and
  // deblurs it; masks go through the mask cache when mask_cache_dir is set (the
  // "files" source needs this variant: it finds the mask file by the image's name).
  Result deblur_file(const std::string& path);

  bool needs_masks() const;
  const models::NetworkOptions& network() const;
  const Options& options() const { return options_; }
  // "SegNAFNetLocal (SegNAFNet) width 32 ... from X; masks: ...; tiles 512/64".
  std::string describe() const;
  // Mask cache counters (deblur_file with a cache; 0 otherwise).
  int64_t mask_cache_hits() const;
  int64_t mask_cache_misses() const;

 private:
  // path: the image file ("" for in-memory images; names it in messages).
  Result run(const cv::Mat& bgr, cv::Mat label_map, const std::string& path);
  cv::Mat compute_label_map(const cv::Mat& bgr, const std::string& path);

  Options options_;
  torch::Device device_;
  models::DeblurNet net_;
  std::string network_description_;
  dataset::DatasetOptions input_;  // the sdb-eval dataset type matching the network
  std::unique_ptr<masks::MaskSource> source_;
  std::unique_ptr<masks::MaskProvider> provider_;
};

namespace deblur {
// The grouped masks of an official label map (CV_8UC1) as the MAP unit consumes
// them: equal to models::SegMasks::from_masks(masks::grouped_masks(label_map),
// value) (one group per distinct grey value, ascending), built without the
// (M, 1, H, W) bool tensor (gigabytes for a 24-megapixel image).
models::SegMasks grouped_labels(const cv::Mat& label_map, double value);
}  // namespace deblur

}  // namespace samdeblur
