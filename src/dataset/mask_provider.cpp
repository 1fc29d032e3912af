// On-the-fly masks with an on-disk cache (see include/samdeblur/dataset/mask_provider.h).
#include "samdeblur/dataset/mask_provider.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/dataset/sha256.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/sam/mask_files.h"

namespace samdeblur::dataset {
namespace fs = std::filesystem;

namespace {

// One "name=value" line per setting; doubles in shortest round-trip form.
std::string generator_settings(const sam::MaskGeneratorOptions& g) {
  std::string s;
  auto line = [&s](const char* name, const std::string& value) {
    s += fmt::format("generator.{}={}\n", name, value);
  };
  line("points_per_side", g.points_per_side ? std::to_string(*g.points_per_side) : "none");
  if (g.point_grids.empty()) {
    line("point_grids", "none");
  } else {
    Sha256 sha;
    for (const auto& grid : g.point_grids) {
      const torch::Tensor t = grid.to(torch::kFloat64).contiguous();
      const std::string shape = fmt::format("({}, {});", t.size(0), t.size(1));
      sha.update(shape);
      sha.update(t.data_ptr<double>(), static_cast<std::size_t>(t.numel()) * sizeof(double));
    }
    line("point_grids", fmt::format("{} grids sha256 {}", g.point_grids.size(), sha.hex_digest()));
  }
  line("points_per_batch", std::to_string(g.points_per_batch));
  line("pred_iou_thresh", fmt::format("{}", g.pred_iou_thresh));
  line("stability_score_thresh", fmt::format("{}", g.stability_score_thresh));
  line("stability_score_offset", fmt::format("{}", g.stability_score_offset));
  line("box_nms_thresh", fmt::format("{}", g.box_nms_thresh));
  line("crop_n_layers", std::to_string(g.crop_n_layers));
  line("crop_nms_thresh", fmt::format("{}", g.crop_nms_thresh));
  line("crop_overlap_ratio", fmt::format("{}", g.crop_overlap_ratio));
  line("crop_n_points_downscale_factor", std::to_string(g.crop_n_points_downscale_factor));
  line("min_mask_region_area", std::to_string(g.min_mask_region_area));
  return s;
}

std::string build_settings(const config::MaskSourceOptions& o) {
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
    s += generator_settings(o.generator);
  } else if (o.type == "superpixels") {
    const auto& p = o.superpixels;
    s += fmt::format(
        "superpixels.region_size={}\nsuperpixels.ruler={}\nsuperpixels.iterations={}\n"
        "superpixels.min_element_size_percent={}\n",
        p.region_size, p.ruler, p.iterations, p.min_element_size_percent);
  } else {
    throw Error("MaskProvider: mask_source.type must be 'sam' or 'superpixels', got '" + o.type +
                "'");
  }
  s += "encoding=" + o.encoding + "\n";
  if (o.encoding == "exclusive") s += "exclusive_order=" + o.exclusive_order + "\n";
  return s;
}

}  // namespace

std::string resolve_mask_cache_dir(const config::MaskSourceOptions& o,
                                   const std::string& output_dir) {
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

MaskProvider::MaskProvider(config::MaskSourceOptions options, std::string cache_dir,
                           torch::Device device, PredictorFactory factory)
    : options_(std::move(options)),
      cache_dir_(std::move(cache_dir)),
      device_(device),
      factory_(std::move(factory)) {
  if (cache_dir_.empty()) throw Error("MaskProvider: empty cache folder");
  settings_ = build_settings(options_);
  if (options_.type == "sam" && !factory_) {
    factory_ = [o = options_, device = device_]() {
      sam::SamConfig cfg;
      if (o.model_type == "auto")
        cfg.model_type = "auto";
      else
        cfg = sam::SamConfig::from_name(o.model_type);
      return sam::make_predictor(cfg, o.checkpoint, device);
    };
  }
}

MaskProvider::~MaskProvider() = default;

std::string MaskProvider::cache_key(const std::string& image_path) const {
  return sha256_hex(settings_ + "image_sha256=" + sha256_file_hex(image_path) + "\n");
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
bool MaskProvider::model_loaded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return predictor_ != nullptr;
}

std::string MaskProvider::describe() const {
  if (options_.type == "superpixels")
    return fmt::format("SLIC superpixels (region {} px), NOT Segment Anything",
                       options_.superpixels.region_size);
  return fmt::format("SAM {} from {}, images given as {}, encoding {}", options_.model_type,
                     options_.checkpoint, options_.rgb ? "RGB" : "BGR (as the official script)",
                     options_.encoding);
}

sam::GenerateResult MaskProvider::generate(const cv::Mat& image_bgr) {
  if (options_.type == "superpixels")
    return sam::superpixel_masks(image_bgr, options_.superpixels,
                                 sam::OutputMode::uncompressed_rle);
  if (!generator_) {
    const auto t0 = std::chrono::steady_clock::now();
    predictor_ = factory_();
    if (!predictor_) throw Error("MaskProvider: the SAM predictor factory returned nothing");
    generator_ = std::make_unique<sam::MaskGenerator>(*predictor_, options_.generator);
    log::info(
        fmt::format("mask source: SAM {} loaded from {} on the first cache miss ({:.1f}s)",
                    predictor_->config().model_type, options_.checkpoint,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  return sam::make_sam_source(*generator_, options_.rgb, /*keep_embedding=*/false)(image_bgr);
}

void MaskProvider::write_sidecar(const std::string& key, const std::string& image_path) const {
  nlohmann::json j;
  j["key"] = key;
  j["image"] = image_path;  // the first image seen with these bytes (informational)
  j["settings"] = settings_;
  const fs::path p = fs::path(cache_path(key)).replace_extension(".json");
  write_file_atomic(p.string(), j.dump(2) + "\n");
}

cv::Mat MaskProvider::label_map(const std::string& image_path) {
  if (options_.encoding != "official")
    throw Error("MaskProvider::label_map needs mask_source.encoding official, not " +
                options_.encoding);
  const std::string key = cache_key(image_path);
  const std::string path = cache_path(key);
  std::lock_guard<std::mutex> lock(mutex_);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    try {
      cv::Mat lm = io::read_image_bgr(path, /*grayscale=*/true);
      ++hits_;
      log::debug(fmt::format("mask cache hit: {} -> {}", image_path, path));
      return lm;
    } catch (const Error& e) {
      log::warn(fmt::format("mask cache: unreadable entry, recomputing: {}", e.what()));
    }
  }
  ++misses_;
  const cv::Mat bgr = io::read_image_bgr(image_path);
  const sam::GenerateResult result = generate(bgr);
  cv::Mat lm = sam::label_map(result.masks, bgr.rows, bgr.cols);
  write_sidecar(key, image_path);
  io::write_image_atomic(path, lm);  // last: its presence marks a complete entry
  log::debug(
      fmt::format("mask cache miss: {} -> {} ({} masks)", image_path, path, result.masks.size()));
  return lm;
}

torch::Tensor MaskProvider::grouped_masks(const std::string& image_path) {
  if (options_.encoding == "official") return sam::grouped_masks(label_map(image_path));
  const std::string key = cache_key(image_path);
  const std::string path = cache_path(key);
  std::lock_guard<std::mutex> lock(mutex_);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    try {
      torch::Tensor m = io::read_npz_array(path, "masks");
      ++hits_;
      return m;
    } catch (const Error& e) {
      log::warn(fmt::format("mask cache: unreadable entry, recomputing: {}", e.what()));
    }
  }
  ++misses_;
  const cv::Mat bgr = io::read_image_bgr(image_path);
  const sam::GenerateResult result = generate(bgr);
  const auto order = options_.exclusive_order == "smallest_first"
                         ? sam::ExclusiveOrder::smallest_first
                         : sam::ExclusiveOrder::generator;
  write_sidecar(key, image_path);
  // The file of `sdb-masks --format exclusive-npz` (masks + mask_ids).
  sam::write_mask_file(path, sam::MaskFileFormat::exclusive_npz, result, bgr.rows, bgr.cols, order);
  return io::read_npz_array(path, "masks");
}

}  // namespace samdeblur::dataset
