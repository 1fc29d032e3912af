#pragma once
// Training data pipeline: the official datasets in phase 'train'
// (SAM-Deblur basicsr/data/paired_image_dataset.py, paired_image_mask_dataset.py,
// paired_image_group_mask_dataset.py, transforms.py, data_sampler.py), with a
// deterministic multi-threaded loader.
//
// Per sample (official order): read lq / gt (uint8 BGR) and the mask (grouped
// .npz, or the CAT label-map PNG); pad bottom/right to gt_size with
// cv::BORDER_REFLECT (images, CAT mask and every grouped-mask slice); random
// crop gt_size x gt_size at the same (top, left) for all; hflip (p 0.5, when
// use_flip), vflip (p 0.5, when use_rot), rot90 (p 0.5, when use_rot) applied in
// that order; images are rotated by transposing H and W. Grouped masks:
//   mask_rotation "correct" (default): transposed like the image, so masks stay
//     aligned with the pixels they segment;
//   mask_rotation "official": np.rot90(mask, axes=(2, 3)) as the official
//     augment_with_masks, i.e. a counter-clockwise rotation, which is NOT the
//     image's transpose (masks end up mirrored w.r.t. the image); for
//     reproducing official runs only.
// Then empty mask slices are dropped (remove_zero_slices) and the masks become
// models::SegMasks with value 1/255 (MaskEncoding::official) or 1 (clean).
// Tensors: lq (C, gt, gt) RGB float in [0, 1] (C = 4 for the CAT variant: the
// label map / 255 as channel 3), gt (3, gt, gt).
//
// Deviations from the official code (all documented where they occur):
//  * pairing by file name (dataset::list_samples) instead of scandir position;
//  * random numbers: our own per-sample generator (below), not Python's
//    `random` seeded per worker, so crops differ from an official run, but are
//    reproducible for a seed whatever the thread count;
//  * an image whose crop leaves no non-empty grouped mask yields a SegMasks
//    with num_masks 0 (the official np.stack([]) raises);
//  * bool grouped masks are padded (the official cv2.copyMakeBorder rejects
//    bool arrays, so official padding works only for uint8 mask files).
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "samdeblur/dataset/options.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/models/network.h"

namespace samdeblur::train {

// `datasets.train` (the one struct: parsed by train_config.cpp, validated here,
// consumed by TrainLoader); field names are the official keys (mask_rotation
// and prefetch are ours).
struct TrainDatasetOptions {
  dataset::DatasetOptions base;  // type, dataroots, filename_tmpl, mask_encoding
  int64_t gt_size = 256;
  bool use_flip = true;
  bool use_rot = true;
  // Official train loaders always shuffle (EnlargedSampler); false visits the
  // enlarged index list in order (our extension, for debugging).
  bool use_shuffle = true;
  int64_t batch_size_per_gpu = 8;
  int64_t num_worker_per_gpu = 4;  // decoding / augmentation threads (>= 0)
  int64_t dataset_enlarge_ratio = 1;
  std::string mask_rotation = "correct";  // correct | official
  int64_t prefetch = 4;                   // batches prepared ahead (>= 1)
  // Throws ConfigError naming datasets.<base.key>.<key> (datasets.train when
  // base.key is empty).
  void validate() const;
};

struct TrainBatch {
  torch::Tensor lq;  // (B, C, gt_size, gt_size) float32 RGB [0, 1]; C = 4 for CAT
  torch::Tensor gt;  // (B, 3, gt_size, gt_size)
  std::vector<models::SegMasks> masks;  // one per image (grouped-mask dataset), else empty
  std::vector<std::string> names;       // gt file stems
  std::vector<int64_t> indices;         // dataset indices (into list_samples order)
  int64_t epoch = 0, position = 0;      // where this batch sits in the loader's stream
};

// Position of the loader: the next batch is batch `position` of `epoch`.
struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;
  uint64_t seed = 0;
};

// ------------------------------------------------------------------ pieces
// The random choices of one sample, in the official draw order.
struct AugmentParams {
  int64_t top = 0, left = 0;  // crop origin in the padded image
  bool hflip = false, vflip = false, rot90 = false;
};

// A decoded sample before the train transforms.
struct RawSample {
  std::string name;
  cv::Mat lq, gt;       // uint8 BGR, same size
  cv::Mat mask_png;     // uint8 grey (CAT variant), else empty
  torch::Tensor masks;  // (M, H, W) uint8 0/1 (grouped masks), else undefined
};

// Reads the files of `paths` (io::read_image_bgr, io::read_npz_array "masks").
// Throws FileError naming an unreadable file, Error naming both files when
// sizes differ.
RawSample load_raw_sample(const dataset::SamplePaths& paths,
                          const dataset::DatasetOptions& options);

// Draws the augmentation of a sample whose padded size is (h, w) >= gt_size:
// top, left uniform in [0, h - gt_size], [0, w - gt_size], then three fair
// coins (always drawn; the flag is then and-ed with use_flip / use_rot).
AugmentParams draw_augment_params(int64_t padded_h, int64_t padded_w,
                                  const TrainDatasetOptions& options, std::mt19937_64& rng);

struct TrainSample {
  std::string name;
  torch::Tensor lq, gt;                   // (C, gt, gt), (3, gt, gt)
  std::optional<models::SegMasks> masks;  // grouped-mask dataset only
};

// Pads, crops and augments as described at the top. Does not modify `raw`.
TrainSample transform_sample(const RawSample& raw, const AugmentParams& params,
                             const TrainDatasetOptions& options);

// Size after the official padding: max(h, gt_size), max(w, gt_size).
cv::Size padded_size(const cv::Size& size, int64_t gt_size);

// Seed of one sample's generator: a splitmix64 hash of (seed, epoch, slot),
// slot = the sample's position in the epoch's full (all ranks) index list.
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t slot);

// EnlargedSampler (basicsr/data/data_sampler.py): num_samples =
// ceil(N * ratio / world_size); torch.randperm(num_samples * world_size) from
// a torch CPU generator seeded with `epoch` (bit-identical to the official
// order), each value mod N, then every world_size-th from `rank`. Without
// shuffle the permutation is the identity. Returns this rank's list.
std::vector<int64_t> epoch_indices(int64_t dataset_size, int64_t epoch, int64_t ratio, int64_t rank,
                                   int64_t world_size, bool shuffle = true);

// ------------------------------------------------------------------ loader
// Endless stream of batches (drop_last, as the official loader): size()
// batches per epoch, then the next epoch. Batches are prepared by
// num_worker_per_gpu threads, at most `prefetch` batches ahead of next(), and
// start on the first next(). The content of batch (epoch, position) depends
// only on (files, options, seed, rank, world_size, epoch, position): not on
// the thread count, timing, or how the loader got there (restore()).
class TrainLoader {
 public:
  TrainLoader(TrainDatasetOptions options, uint64_t seed, int64_t rank = 0, int64_t world_size = 1);
  ~TrainLoader();
  TrainLoader(const TrainLoader&) = delete;
  TrainLoader& operator=(const TrainLoader&) = delete;

  // Blocks until the next batch is ready; rethrows a worker's exception (the
  // message names the file) for the batch that failed.
  TrainBatch next();
  LoaderState state() const;
  // Discards prepared batches and continues at `state` (its seed must equal
  // this loader's: a different seed throws Error).
  void restore(const LoaderState& state);
  int64_t size() const;          // batches per epoch on this rank
  int64_t dataset_size() const;  // number of image pairs (len(train_set))
  const std::vector<dataset::SamplePaths>& samples() const;
  // Builds one batch synchronously (what next() returns at that state).
  TrainBatch make_batch(int64_t epoch, int64_t position) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace samdeblur::train
