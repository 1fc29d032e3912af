#pragma once
// ext: masks computed on the fly for sdb-eval (`datasets.<key>.mask_source`)
// instead of being read from dataroot_mask, with an on-disk cache.
//
// Masks are what sdb-masks would have written for the same image, from the
// mask source of the options (masks/source.h):
//   official : label map = draw_segmask of the generator's records
//              (masks/encodings.h label_map); grouped masks = grouped_masks(label
//              map), i.e. the .npz of `sdb-masks --format grouped-npz`; the CAT
//              channel = label map / 255, i.e. the PNG of `--format label-png`.
//   exclusive: `sdb-masks --format exclusive-npz` (grouped datasets only).
// Deviation: the official pipeline computed the GoPro CAT masks on pre-deblurred
// inputs; on the fly, masks always come from the lq image of the dataset.
//
// Cache: one file per image under <cache_dir>/<key[0:2]>/<key>.png (label map;
// .npz for exclusive), written atomically, plus <key>.json describing it. The
// key is the SHA-256 of settings_string() (format version, source, every
// declared generator / superpixel field (config/fields.h), model type,
// checkpoint size and mtime, rgb flag, encoding) followed by the SHA-256 of
// the image file's bytes. The device SAM
// runs on is not part of the key. A hit never touches SAM; the model is built
// once, on the first miss.
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "samdeblur/masks/options.h"
#include "samdeblur/masks/source.h"

namespace samdeblur::masks {

// Bump when the meaning of a cached file changes (invalidates every entry).
inline constexpr int kMaskCacheFormatVersion = 1;

class MaskProvider {
 public:
  // Builds the SAM predictor on the first cache miss (default: make_predictor
  // with options.model_type and options.checkpoint on the provider's device).
  using PredictorFactory = masks::PredictorFactory;

  // options.type must be one of mask_source_types(). A sam checkpoint must exist
  // (its size and mtime are part of the key): FileError naming it otherwise.
  // An empty cache_dir is an Error (the evaluator resolves the default).
  MaskProvider(MaskSourceOptions options, std::string cache_dir, torch::Device device = torch::kCPU,
               PredictorFactory factory = {});
  ~MaskProvider();
  MaskProvider(const MaskProvider&) = delete;
  MaskProvider& operator=(const MaskProvider&) = delete;

  // (H, W) CV_8UC1 official label map of the image file (encoding official).
  cv::Mat label_map(const std::string& image_path);
  // (M, 1, H, W) bool grouped masks of the image file, in the configured encoding.
  torch::Tensor grouped_masks(const std::string& image_path);

  // Canonical description of everything but the image that determines the masks
  // (mask_cache_settings(options)).
  const std::string& settings_string() const { return settings_; }
  // Hex SHA-256 key of an image file; FileError when it cannot be read.
  std::string cache_key(const std::string& image_path) const;
  // <cache_dir>/<key[0:2]>/<key>.png (.npz for the exclusive encoding).
  std::string cache_path(const std::string& key) const;
  const std::string& cache_dir() const { return cache_dir_; }

  // Thread-safe counters (load_sample runs on a worker thread).
  int64_t hits() const;
  int64_t misses() const;
  bool model_loaded() const;
  std::string describe() const;  // "sam vit_h from X" / "superpixels (region 48 px)"

 private:
  // The one look-up: a readable entry at the image's cache path is a hit
  // (read(path)); otherwise the source generates the masks and store(path,
  // result, h, w) writes the entry and returns the value.
  template <class T, class Read, class Store>
  T cached(const std::string& image_path, Read read, Store store);
  void write_sidecar(const std::string& key, const std::string& image_path) const;

  MaskSourceOptions options_;
  std::string cache_dir_;
  std::string settings_;
  std::unique_ptr<MaskSource> source_;
  mutable std::mutex mutex_;
  int64_t hits_ = 0, misses_ = 0;
};

// settings_string() of a provider with these options: a header, then
// fields_text() of every declared generator (sam) or superpixel field, so a
// declared field cannot be missing from the key. sam: FileError when the
// checkpoint does not exist (its size and mtime are part of it).
std::string mask_cache_settings(const MaskSourceOptions& options);

// Default cache folder of a dataset: mask_source.cache_dir ("~/" expanded
// from $HOME) or, when empty, <output_dir>/mask_cache.
std::string resolve_mask_cache_dir(const MaskSourceOptions& options, const std::string& output_dir);

}  // namespace samdeblur::masks
