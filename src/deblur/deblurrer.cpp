// samdeblur::Deblurrer (deblur/deblurrer.h).
#include "samdeblur/deblur/deblurrer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <chrono>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/deblur/recognise.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/io/image.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/source.h"
#include "samdeblur/models/execution.h"

namespace samdeblur {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

models::NetworkOptions network_from_yaml(const std::string& path) {
  YAML::Node root = config::load_yaml_file(path);
  if (!root.IsMap() || !root["network_g"])
    throw ConfigError(path + ": no network_g mapping (the network of an official test config)");
  return models::parse_network_options(config::Section(root["network_g"], "network_g", path));
}

// The dataset type whose loader builds this network's input (sdb-eval's).
std::string dataset_type_for(const models::NetworkOptions& n) {
  if (n.is_seg()) return "PairedImageGroupMaskDataset";
  return n.mask ? "PairedImageMaskDataset" : "PairedImageDataset";
}

}  // namespace

namespace deblur {

// grouped_labels (deblurrer.h): the rank of each grey value among those present, written
// straight into the (H, W) int64 labels (every rank is present, so this is
// SegMasks::from_labels' result without its full-size temporaries).
models::SegMasks grouped_labels(const cv::Mat& label_map, double value) {
  std::array<int64_t, 256> rank{};
  rank.fill(-1);
  for (int r = 0; r < label_map.rows; ++r) {
    const uint8_t* row = label_map.ptr<uint8_t>(r);
    for (int c = 0; c < label_map.cols; ++c) rank[row[c]] = 0;
  }
  int64_t m = 0;
  for (auto& v : rank)
    if (v == 0) v = m++;
  models::SegMasks out;
  out.labels = torch::empty({label_map.rows, label_map.cols}, torch::kInt64);
  int64_t* labels = out.labels.data_ptr<int64_t>();
  for (int r = 0; r < label_map.rows; ++r) {
    const uint8_t* row = label_map.ptr<uint8_t>(r);
    int64_t* dst = labels + static_cast<int64_t>(r) * label_map.cols;
    for (int c = 0; c < label_map.cols; ++c) dst[c] = rank[row[c]];
  }
  out.num_masks = m;
  out.value = value;
  return out;
}

}  // namespace deblur

Deblurrer::Deblurrer(Options options) : options_(std::move(options)), device_(torch::kCPU) {
  options_.tiles.validate();
  if (options_.checkpoint.empty()) throw ConfigError("Deblurrer: no checkpoint given");
  device_ = parse_device(options_.device);
  set_cpu_threads(options_.threads);
  models::NetworkOptions network;
  if (options_.network) {
    network = *options_.network;
    network.validate();
    network_description_ = network.type + " (given)";
  } else if (!options_.config.empty()) {
    network = network_from_yaml(options_.config);
    network_description_ = network.type + " (network_g of " + options_.config + ")";
  } else {
    io::ReadOptions read;
    read.param_key = options_.param_key;
    read.allow_nonfinite = options_.allow_nonfinite;
    const auto recognised = deblur::recognise_checkpoint(options_.checkpoint, options_.tlc, read);
    network = recognised.network;
    network_description_ = recognised.describe();
  }
  eval::PathOptions path;
  path.pretrain_network_g = options_.checkpoint;
  path.param_key_g = options_.param_key;
  net_ = eval::build_and_load(network, path, device_, options_.allow_nonfinite);
  const auto execution = models::parse_execution(options_.precision, options_.memory_format,
                                                 "Deblurrer options", device_);
  models::check_execution_supported(execution, device_);
  net_->set_execution(execution);
  input_.key = "deblur";
  input_.name = "deblur";
  input_.type = dataset_type_for(net_->options());
  input_.mask_encoding = options_.mask_encoding;
  if (!net_->needs_masks() && !net_->options().mask) {
    if (options_.masks.on_the_fly())
      log::warn(fmt::format("{} needs no masks: mask source '{}' ignored", network_description_,
                            options_.masks.type));
    return;
  }
  if (!options_.masks.on_the_fly())
    throw ConfigError(
        fmt::format("{}: the network ({}) needs SAM masks; give a mask source (sdb-deblur: --sam "
                    "sam_vit_h_4b8939.pth, --masks-dir DIR or --masks superpixels)",
                    options_.checkpoint, network_description_));
  if (options_.masks.encoding != "official")
    throw ConfigError("Deblurrer: masks.encoding must be 'official', got '" +
                      options_.masks.encoding + "'");
  masks::MaskSourceContext context;
  context.device = device_;
  source_ = masks::make_mask_source(options_.masks, context);
  if (!options_.mask_cache_dir.empty())
    provider_ =
        std::make_unique<masks::MaskProvider>(options_.masks, options_.mask_cache_dir, device_);
}

Deblurrer::~Deblurrer() = default;

bool Deblurrer::needs_masks() const { return static_cast<bool>(source_); }
const models::NetworkOptions& Deblurrer::network() const { return net_->options(); }
int64_t Deblurrer::mask_cache_hits() const { return provider_ ? provider_->hits() : 0; }
int64_t Deblurrer::mask_cache_misses() const { return provider_ ? provider_->misses() : 0; }

std::string Deblurrer::describe() const {
  std::string masks = "none";
  if (provider_)
    masks = provider_->describe() + ", cache " + provider_->cache_dir();
  else if (source_)
    masks = source_->describe();
  const std::string tiles =
      options_.tiles.tile > 0
          ? fmt::format("{} px tiles, {} px overlap", options_.tiles.tile, options_.tiles.overlap)
          : std::string("whole image");
  return fmt::format("{} from {} on {}; masks: {}; {}", network_description_, options_.checkpoint,
                     options_.device, masks, tiles);
}

cv::Mat Deblurrer::compute_label_map(const cv::Mat& bgr, const std::string& path) {
  if (provider_ && !path.empty()) return provider_->label_map(path);
  if (options_.masks.type == "files" && path.empty())
    throw Error(
        "Deblurrer: masks from files (masks.files.folder) are found by the image's file name: "
        "use deblur_file(path) or pass the label map");
  const sam::GenerateResult result = source_->generate(bgr, path);
  return masks::label_map(result.masks, bgr.rows, bgr.cols);
}

Deblurrer::Result Deblurrer::run(const cv::Mat& bgr, cv::Mat label_map, const std::string& path) {
  const std::string name = path.empty() ? std::string("image") : path;
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw Error(
        fmt::format("{}: Deblurrer needs a non-empty 8-bit 3-channel BGR image, got {}x{} "
                    "type {}",
                    name, bgr.rows, bgr.cols, bgr.type()));
  Result r;
  r.input = bgr;
  dataset::Sample s;
  s.name = name;
  s.lq_u8 = bgr;
  s.lq = io::image_to_tensor(bgr);
  if (source_) {
    const auto t0 = Clock::now();
    if (label_map.empty()) label_map = compute_label_map(bgr, path);
    if (label_map.type() != CV_8UC1 || label_map.size() != bgr.size())
      throw Error(
          fmt::format("{}: the label map must be CV_8UC1 of the image's size {}x{} (HxW), "
                      "got {}x{} type {}",
                      name, bgr.rows, bgr.cols, label_map.rows, label_map.cols, label_map.type()));
    if (input_.grouped_masks()) {
      const double value =
          options_.mask_encoding == dataset::MaskEncoding::official ? 1.0 / 255.0 : 1.0;
      s.masks = deblur::grouped_labels(label_map, value);
    } else {
      dataset::attach_masks(s, input_, io::image_to_tensor(label_map), "label map of " + name,
                            name);
    }
    r.label_map = label_map;
    r.masks_seconds = since(t0);
  }
  const auto t0 = Clock::now();
  r.image = io::tensor_to_image(deblur::infer_tiled(*net_, s, options_.tiles, device_));
  r.network_seconds = since(t0);
  return r;
}

cv::Mat Deblurrer::deblur(const cv::Mat& bgr) { return run(bgr, cv::Mat(), "").image; }

Deblurrer::Result Deblurrer::deblur(const cv::Mat& bgr, const cv::Mat& label_map) {
  return run(bgr, label_map, "");
}

Deblurrer::Result Deblurrer::deblur_file(const std::string& path) {
  const auto t0 = Clock::now();
  const cv::Mat bgr = io::read_image_bgr(path);
  const double io_seconds = since(t0);
  Result r = run(bgr, cv::Mat(), path);
  r.io_seconds = io_seconds;
  return r;
}

}  // namespace samdeblur
