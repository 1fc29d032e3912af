#pragma once
// The file side of sdb-deblur: which images to deblur, where their outputs go,
// and the loop that deblurs them one by one (resumable, one failure does not
// stop the others). The app is a thin shell around run_batch().
//
// Outputs, all written atomically (write_file_atomic) into the output folder:
//   <stem>.<format>          the deblurred image, named like the input
//   <stem>_mask.png          --save-masks: the official label map used
//   <stem>_compare.<format>  --compare: input | output | mask overlay, side by side
// An image whose outputs all exist is skipped (resume).
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "samdeblur/deblur/deblurrer.h"

namespace samdeblur::deblur {

// The extensions taken from folders and glob patterns (lower case, with the dot).
const std::vector<std::string>& image_extensions();

// Expands files, folders (their image files, not recursive, hidden files
// skipped) and glob patterns (*, ?, [...]) into image paths, sorted per input,
// duplicates removed. A file given by name is taken whatever its extension.
// FileError naming the input for one that matches nothing or is not readable.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

struct BatchOptions {
  std::vector<std::string> inputs;  // files, folders, glob patterns
  std::string output_dir;
  std::string format = "png";  // png | jpg
  int quality = 95;            // jpg quality 1..100
  bool save_masks = false;
  bool compare = false;
  bool progress = true;
  // Throws ConfigError naming the option (format, quality, empty output folder).
  void validate() const;
};

struct BatchItem {
  std::string input, output;
};

// The output paths of the images: <output_dir>/<stem>.<format>. Throws Error
// when two inputs would share an output name, when the output folder is the
// folder of an input (refused: outputs named like the inputs would sit next to
// them) or when an output path is an input file.
std::vector<BatchItem> plan_outputs(const std::vector<std::string>& images,
                                    const BatchOptions& options);

struct BatchSummary {
  int64_t done = 0, skipped = 0, failed = 0;
  std::vector<std::string> failures;  // "<input>: <message>"
};

// One JSON object per image, in order: image, output, status ("done",
// "skipped" or "failed"), and for done images height, width and seconds
// {masks, network, io, total} (io: reading and writing); failed: error.
using JsonLineFn = std::function<void(const nlohmann::json&)>;

// Deblurs every image of options.inputs into options.output_dir. An image that
// fails (corrupt or truncated file, ...) is logged with its name, reported as
// a failed line and counted; the others still complete. Errors in the inputs as
// a whole (nothing matched, name clash, output folder = input folder) throw
// before anything is written.
BatchSummary run_batch(Deblurrer& deblurrer, const BatchOptions& options,
                       const JsonLineFn& on_line = {});

// input | output | overlay side by side (overlay: the input blended with a
// colour per label-map value; input | output when label_map is empty).
cv::Mat compare_image(const cv::Mat& input, const cv::Mat& output, const cv::Mat& label_map);

}  // namespace samdeblur::deblur
