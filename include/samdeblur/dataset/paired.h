#pragma once
// Benchmark folders in the official test layout (SAM-Deblur
// basicsr/data/paired_image*_dataset.py): dataroot_lq / dataroot_gt paired by
// file name (gt stem -> filename_tmpl.format(stem) in lq and mask folders),
// plus dataroot_mask as grouped masks (.npz, key `masks`, bool (M,1,H,W)) or
// as label-map PNGs (the CAT input channel, grey / 255).
//
// Deviation: the official mask datasets pair the three folders by position in
// unsorted os.scandir order; we pair by name and fail when a name is missing,
// which gives the same pairs whenever the official ones are right.
//
// ext: with `mask_source` instead of dataroot_mask, masks are computed from the
// lq image on the fly (masks/cache.h), equal to the files sdb-masks
// would write.
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include <optional>
#include <string>
#include <vector>

#include "samdeblur/dataset/options.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/models/network.h"

namespace samdeblur::dataset {

struct SamplePaths {
  std::string name;          // gt file stem: the key of metrics.csv and images/<name>.png
  std::string lq, gt, mask;  // mask: empty when masks come from a mask_source
};

// Lists the samples of a dataset, sorted by gt file name. Throws FileError /
// Error naming the folder or file for: a missing folder, an empty folder,
// different file counts, a gt name without lq (or mask) partner.
std::vector<SamplePaths> list_samples(const DatasetOptions& options);

struct Sample {
  std::string name;
  torch::Tensor lq;  // (C, H, W) float32 RGB in [0, 1]; C = 4 for the CAT variant
  torch::Tensor gt;  // (3, H, W) float32 RGB in [0, 1]
  cv::Mat lq_u8;     // (H, W, 3) uint8 BGR as read (for PSNR(input, gt))
  cv::Mat gt_u8;     // (H, W, 3) uint8 BGR as read
  std::optional<models::SegMasks> masks;  // grouped masks (SegNAFNet*)
};

// Reads the lq and gt images (uint8 BGR, as imfrombytes) of a pair; throws an
// Error naming both files and sizes when they differ. Shared by the test and
// the training loaders.
std::pair<cv::Mat, cv::Mat> read_pair_bgr(const SamplePaths& paths);

// Reads one sample exactly as the official test loader does (BGR uint8 ->
// float / 255 -> RGB CHW). Sizes of lq, gt and masks must agree: otherwise an
// Error naming the files and both sizes. With options.mask_source the masks of
// paths.lq come from `masks` (required then, an Error otherwise).
Sample load_sample(const SamplePaths& paths, const DatasetOptions& options,
                   masks::MaskProvider* masks = nullptr);

// The masks step of load_sample, for a sample whose lq tensor (3, H, W) is set;
// shared with deblur::Deblurrer so that sdb-deblur builds the network input as
// sdb-eval does. Grouped datasets: `masks` (M, 1, H, W) or (M, H, W) bool ->
// s.masks (value 1/255 or 1 by options.mask_encoding; an empty set is a
// FileError). CAT (PairedImageMaskDataset): `masks` is the (1, H, W) channel
// (label map / 255), appended to s.lq. Other types: nothing. `origin` names the
// masks and `image` the image in size-mismatch errors.
void attach_masks(Sample& s, const DatasetOptions& options, torch::Tensor masks,
                  const std::string& origin, const std::string& image);

}  // namespace samdeblur::dataset
