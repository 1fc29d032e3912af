#pragma once
// The batch job behind sdb-masks: every image of a folder through a mask
// source, one mask file per image (masks/encodings.h), resumable.
#include <string>
#include <vector>

#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/source.h"

namespace samdeblur::masks {

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
  int64_t redone = 0;     // of processed: an existing output was incomplete or invalid
  sam::StageTimes times;  // summed over processed images
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

// Why the outputs of `image` are not complete and valid ("" when they are, and
// the image can be skipped): a missing file, or one that does not decode to
// the image's size (mask_file_problem), or an embedding that is not (1, 256, 64, 64).
std::string output_problem(const std::string& image, const MaskJobOptions& options);

// Runs `source` over the images, skipping those whose outputs are complete and
// valid (resume; an existing but broken output is recomputed, with a log line
// saying why), writing every file atomically, with a progress bar and a log
// line per image (time split into encoder / decoder / post-processing).
MaskJobSummary run_mask_job(const MaskJobOptions& options, MaskSource& source);
MaskJobSummary run_mask_job(const MaskJobOptions& options, const MaskFn& source);

}  // namespace samdeblur::masks
