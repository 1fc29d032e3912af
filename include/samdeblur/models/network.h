#pragma once
// Common interface of the deblurring networks and the options of the official
// `network_g` YAML block (SAM-Deblur basicsr/models/archs/*.py).
#include <torch/torch.h>

#include <string>
#include <vector>

#include "samdeblur/models/execution.h"

namespace samdeblur::config {
class Section;  // config/yaml_reader.h
}

namespace samdeblur::models {

// The known `network_g.type` values, in the order error messages list them
// (the one list: the parser, validate() and build_network() follow it).
const std::vector<std::string>& network_types();

// Options of `network_g`; field names are the official keys.
struct NetworkOptions {
  std::string type = "NAFNet";  // NAFNet | NAFNetLocal | SegNAFNet | SegNAFNetLocal
  int64_t img_channel = 3;
  int64_t width = 16;
  bool mask = false;          // NAFNet only: one extra input channel (CAT variant)
  int64_t seg_channel = 3;    // SegNAFNet only
  double mask_dropout = 0.5;  // SegNAFNet only, training only
  int64_t middle_blk_num = 1;
  std::vector<int64_t> enc_blk_nums;
  std::vector<int64_t> dec_blk_nums;
  std::vector<int64_t> train_size = {1, 3, 256, 256};  // *Local only (N, C, H, W)
  bool fast_imp = false;                               // *Local only
  double drop_out_rate = 0.0;                          // NAFBlock dropout

  bool is_local() const { return type == "NAFNetLocal" || type == "SegNAFNetLocal"; }
  bool is_seg() const { return type == "SegNAFNet" || type == "SegNAFNetLocal"; }
  // Throws ConfigError naming the key for invalid values or an unknown type.
  void validate() const;
};

// Parses a `network_g` mapping strictly (eval and training configs): keys the
// official class of `type` does not take are errors, as its TypeError; every
// error names the file and network_g.<key>. Calls validate().
NetworkOptions parse_network_options(config::Section section);

// Grouped SAM masks of one image, as the MAP unit consumes them.
//  * labels: (H, W) int64, value k in [0, num_masks) = pixel belongs to mask k,
//    -1 = in no mask. This is the fast path (official grouped masks are a partition).
//  * dense: (M, 1, H, W) float, used only when masks overlap.
// Exactly one of labels / dense is defined. `value` is the value a mask pixel
// carries: 1/255 reproduces the official loader (masks2tensor divides the bool
// masks by 255), 1.0 is the clean variant. H, W are the image's unpadded size.
// `dense` holds 0/1 membership; the MAP unit multiplies it by `value`.
// Implemented in src/models/seg_masks.cpp; the MAP unit is models/map_unit.h.
struct SegMasks {
  torch::Tensor labels;
  torch::Tensor dense;
  int64_t num_masks = 0;
  double value = 1.0 / 255.0;

  // Builds from (M,1,H,W) bool/uint8/float masks: label map when no pixel is
  // in two masks, dense otherwise. Non-empty masks only are kept (the official
  // loader's remove_zero_slices).
  static SegMasks from_masks(const torch::Tensor& masks, double value);
  // From a label map (H, W) int64 with -1 = none.
  static SegMasks from_labels(const torch::Tensor& labels, int64_t num_masks, double value);
  int64_t height() const;
  int64_t width() const;
  SegMasks to(const torch::Device& device) const;
};

// Every network takes a (B, C, H, W) float batch in [0, 1] (RGB; the CAT variant
// has the mask as channel 3) and, for SegNAFNet*, one SegMasks per image.
class DeblurNetImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& input,
                                const std::vector<SegMasks>& masks = {}) = 0;
  virtual bool needs_masks() const = 0;        // SegNAFNet*
  virtual int64_t input_channels() const = 0;  // 3, or 4 for the CAT variant
  virtual const NetworkOptions& options() const = 0;

  // Sets how the network runs (models/execution.h) and converts its parameters
  // to that dtype and layout; the default options restore the exact path.
  // Call outside InferenceMode (parameters stay normal tensors).
  void set_execution(const ExecutionOptions& options);
  const ExecutionOptions& execution() const { return execution_; }

 protected:
  // x (B, C, H, W) float32 in the execution dtype and memory format (x itself
  // for the default options).
  torch::Tensor to_execution(const torch::Tensor& x) const;

 private:
  ExecutionOptions execution_;
};

using DeblurNet = std::shared_ptr<DeblurNetImpl>;

// Factory: explicit, no registry. Unknown type -> ConfigError listing the valid ones.
DeblurNet build_network(const NetworkOptions& options);

}  // namespace samdeblur::models
