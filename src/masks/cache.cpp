// On-the-fly masks with an on-disk cache (see include/samdeblur/masks/cache.h).
#include "samdeblur/masks/cache.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/sha256.h"

namespace samdeblur::masks {
namespace fs = std::filesystem;

namespace {

std::string settings_of(const MaskSourceOptions& o) {
  std::string s = fmt::format("samdeblur-mask-cache\nformat_version={}\nsource={}\n",
                              kMaskCacheFormatVersion, o.type);
  if (o.type == "sam") {
    std::error_code ec;
    const auto size = fs::file_size(o.checkpoint, ec);
    if (ec || !fs::is_regular_file(o.checkpoint))
      throw FileError(o.checkpoint,
                      "SAM checkpoint (mask_source.checkpoint) does not exist or is "
                      "not a file");
    const auto mtime = fs::last_write_time(o.checkpoint, ec);
    if (ec) throw FileError(o.checkpoint, "cannot read the modification time: " + ec.message());
    const auto mtime_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
    s += fmt::format("model_type={}\ncheckpoint_size={}\ncheckpoint_mtime_ns={}\nrgb={}\n",
                     o.model_type, size, mtime_ns, o.rgb ? 1 : 0);
    // Only a non-default precision is written, so fp32 keys stay those of earlier versions.
    if (o.precision != "fp32") s += "precision=" + o.precision + "\n";
    s += config::fields_text(o.generator, "generator");
  } else if (o.type == "superpixels") {
    s += config::fields_text(o.superpixels, "superpixels");
  } else if (o.type == "files") {
    s += config::fields_text(o.files, "files");  // + each mask file's hash (content_key)
  } else {
    throw Error("MaskProvider: mask_source.type must be 'sam', 'superpixels' or 'files', got '" +
                o.type + "'");
  }
  s += "encoding=" + o.encoding + "\n";
  if (o.encoding == "exclusive") s += "exclusive_order=" + o.exclusive_order + "\n";
  return s;
}

}  // namespace

std::string mask_cache_settings(const MaskSourceOptions& options) { return settings_of(options); }

std::string resolve_mask_cache_dir(const MaskSourceOptions& o, const std::string& output_dir) {
  if (o.cache_dir.empty()) return (fs::path(output_dir) / "mask_cache").string();
  if (o.cache_dir == "~" || o.cache_dir.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (!home || !*home)
      throw ConfigError("mask_source.cache_dir '" + o.cache_dir +
                        "' starts with ~ but HOME is not set");
    return std::string(home) + o.cache_dir.substr(1);
  }
  return o.cache_dir;
}

MaskProvider::MaskProvider(MaskSourceOptions options, std::string cache_dir, torch::Device device,
                           PredictorFactory factory)
    : options_(std::move(options)), cache_dir_(std::move(cache_dir)) {
  if (cache_dir_.empty()) throw Error("MaskProvider: empty cache folder");
  settings_ = settings_of(options_);
  MaskSourceContext context;
  context.device = device;
  context.output_mode = sam::OutputMode::uncompressed_rle;  // rasterised into label maps
  context.predictor_factory = std::move(factory);
  source_ = make_mask_source(options_, std::move(context));
}

MaskProvider::~MaskProvider() = default;

std::string MaskProvider::cache_key(const std::string& image_path) const {
  const std::string extra = source_->content_key(image_path);
  return sha256_hex(settings_ + "image_sha256=" + sha256_file_hex(image_path) + "\n" +
                    (extra.empty() ? std::string() : "source_content=" + extra + "\n"));
}

std::string MaskProvider::cache_path(const std::string& key) const {
  const char* ext = options_.encoding == "exclusive" ? ".npz" : ".png";
  return (fs::path(cache_dir_) / key.substr(0, 2) / (key + ext)).string();
}

int64_t MaskProvider::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}
int64_t MaskProvider::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}
bool MaskProvider::model_loaded() const { return source_->model_loaded(); }

std::string MaskProvider::describe() const {
  if (options_.type == "sam") return source_->describe() + ", encoding " + options_.encoding;
  return source_->describe();
}

void MaskProvider::write_sidecar(const std::string& key, const std::string& image_path) const {
  nlohmann::json j;
  j["key"] = key;
  j["image"] = image_path;  // the first image seen with these bytes (informational)
  j["settings"] = settings_;
  const fs::path p = fs::path(cache_path(key)).replace_extension(".json");
  write_file_atomic(p.string(), j.dump(2) + "\n");
}

template <class T, class Read, class Store>
T MaskProvider::cached(const std::string& image_path, Read read, Store store) {
  const std::string key = cache_key(image_path);
  const std::string path = cache_path(key);
  std::lock_guard<std::mutex> lock(mutex_);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    try {
      T value = read(path);
      ++hits_;
      log::debug(fmt::format("mask cache hit: {} -> {}", image_path, path));
      return value;
    } catch (const Error& e) {
      log::warn(fmt::format("mask cache: unreadable entry, recomputing: {}", e.what()));
    }
  }
  ++misses_;
  const cv::Mat bgr = io::read_image_bgr(image_path);
  const sam::GenerateResult result = source_->generate(bgr, image_path);
  write_sidecar(key, image_path);
  T value = store(path, result, bgr.rows, bgr.cols);  // last: the entry marks completion
  log::debug(
      fmt::format("mask cache miss: {} -> {} ({} masks)", image_path, path, result.masks.size()));
  return value;
}

cv::Mat MaskProvider::label_map(const std::string& image_path) {
  if (options_.encoding != "official")
    throw Error("MaskProvider::label_map needs mask_source.encoding official, not " +
                options_.encoding);
  return cached<cv::Mat>(
      image_path, [](const std::string& path) { return io::read_image_bgr(path, true); },
      [](const std::string& path, const sam::GenerateResult& result, int64_t h, int64_t w) {
        cv::Mat lm = masks::label_map(result.masks, h, w);
        io::write_image_atomic(path, lm);
        return lm;
      });
}

torch::Tensor MaskProvider::grouped_masks(const std::string& image_path) {
  if (options_.encoding == "official") return masks::grouped_masks(label_map(image_path));
  const auto order = options_.exclusive_order == "smallest_first" ? ExclusiveOrder::smallest_first
                                                                  : ExclusiveOrder::generator;
  return cached<torch::Tensor>(
      image_path, [](const std::string& path) { return io::read_npz_array(path, "masks"); },
      [order](const std::string& path, const sam::GenerateResult& result, int64_t h, int64_t w) {
        // The file of `sdb-masks --format exclusive-npz` (masks + mask_ids).
        write_mask_file(path, MaskFileFormat::exclusive_npz, result, h, w, order);
        return io::read_npz_array(path, "masks");
      });
}

}  // namespace samdeblur::masks
