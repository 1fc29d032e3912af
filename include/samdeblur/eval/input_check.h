#pragma once
// sdb-eval's check of all its inputs before the first output is written (README,
// Robustness): a damaged third image must not cost a result, nor surface only after two
// images were written.
#include <vector>

#include "samdeblur/dataset/options.h"

namespace samdeblur::eval {

// For every dataset: lists its samples (pairing: dataset::list_samples, which names
// every file without a partner), then checks that every lq and gt image and, for
// PairedImageMaskDataset read from a folder, every mask image is complete
// (io::check_image_file: the JPEG / PNG structure to its end with the PNG CRCs, no
// pixel decoding, so that the evaluation still decodes each image only once). Throws
// Error listing every damaged file of every dataset, not only the first. Grouped .npz
// masks are checked when read (their .npy headers against the image size).
void check_inputs(const std::vector<dataset::DatasetOptions>& datasets);

}  // namespace samdeblur::eval
