#include "samdeblur/config/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace samdeblur::config {


const std::vector<std::string>& dataset_types() {
  static const std::vector<std::string> types = {"PairedImageDataset", "PairedImageMaskDataset",
                                                 "PairedImageGroupMaskDataset"};
  return types;
}

const std::initializer_list<const char*> kTrainOnlyDatasetKeys = {"gt_size",
                                                                  "use_flip",
                                                                  "use_rot",
                                                                  "use_shuffle",
                                                                  "num_worker_per_gpu",
                                                                  "batch_size_per_gpu",
                                                                  "dataset_enlarge_ratio"};
const std::initializer_list<const char*> kUnusedDatasetKeys = {
    "scale", "mean", "std", "meta_info_file", "prefetch_mode", "pin_memory", "persistent_workers"};

bool is_train_dataset(Section& datasets, const std::string& key) {
  Section d = datasets.child(key);
  return d.get<std::string>("phase", key.rfind("train", 0) == 0 ? "train" : "val") == "train";
}

DatasetOptions parse_dataset(Section& s, const std::string& key) {
  DatasetOptions d;
  d.key = key;
  d.name = s.get<std::string>("name", key);
  d.type = s.required<std::string>("type");
  const auto& types = dataset_types();
  if (std::find(types.begin(), types.end(), d.type) == types.end())
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: {}", s.source(),
                                  s.key_path("type"), d.type, fmt::join(types, ", ")));
  d.dataroot_gt = s.required<std::string>("dataroot_gt");
  d.dataroot_lq = s.required<std::string>("dataroot_lq");
  if (d.needs_masks()) {
    // ext: masks from a folder (official) or on the fly (mask_source), exactly one.
    const bool folder = s.has("dataroot_mask"), on_the_fly = s.has("mask_source");
    if (folder && on_the_fly)
      throw ConfigError(fmt::format("{}: {} and {} are both set; give exactly one of them",
                                    s.source(), s.key_path("dataroot_mask"),
                                    s.key_path("mask_source")));
    if (on_the_fly)
      d.mask_source = masks::parse_mask_source(s, d.type);
    else if (folder)
      d.dataroot_mask = s.required<std::string>("dataroot_mask");
    else
      throw ConfigError(
          fmt::format("{}: required key '{}' is missing ({} needs mask files; or "
                      "set {} to compute them on the fly)",
                      s.source(), s.key_path("dataroot_mask"), d.type, s.key_path("mask_source")));
  } else {
    if (s.has("dataroot_mask")) s.ignore("dataroot_mask");
    if (s.has("mask_source")) s.ignore("mask_source");  // PairedImageDataset takes no masks
  }
  d.filename_tmpl = s.get<std::string>("filename_tmpl", "{}");
  const std::string enc = s.get<std::string>("mask_encoding", "official");
  if (enc == "official")
    d.mask_encoding = MaskEncoding::official;
  else if (enc == "clean")
    d.mask_encoding = MaskEncoding::clean;
  else
    throw ConfigError(fmt::format("{}: {} must be 'official' or 'clean', got '{}'", s.source(),
                                  s.key_path("mask_encoding"), enc));
  Section io = s.child("io_backend");
  const std::string backend = io.get<std::string>("type", "disk");
  if (backend != "disk")
    throw ConfigError(fmt::format("{}: {} = '{}': only 'disk' is supported", s.source(),
                                  io.key_path("type"), backend));
  io.finish(nullptr);
  s.ignore(kUnusedDatasetKeys);
  return d;
}

MetricOptions parse_metric(Section& s, const std::string& name) {
  MetricOptions m;
  m.name = name;
  m.type = s.required<std::string>("type");
  if (!metrics::is_metric_type(m.type))
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: {}", s.source(),
                                  s.key_path("type"), m.type,
                                  fmt::join(metrics::metric_types(), ", ")));
  m.crop_border = s.get<int>("crop_border", 0);
  if (m.crop_border < 0)
    throw ConfigError(fmt::format("{}: {} must be >= 0", s.source(), s.key_path("crop_border")));
  m.test_y_channel = s.get<bool>("test_y_channel", false);
  if (m.type == "calculate_ssim") {
    m.ssim3d = s.get<bool>("ssim3d", true);
    m.ssim3d_precision = s.get<std::string>("ssim3d_precision", "float64");
    if (m.ssim3d_precision != "float64" && m.ssim3d_precision != "float32")
      throw ConfigError(fmt::format("{}: {} must be float64 or float32, got '{}'", s.source(),
                                    s.key_path("ssim3d_precision"), m.ssim3d_precision));
  }
  const std::string order = s.get<std::string>("input_order", "HWC");
  if (order != "HWC" && order != "CHW")
    throw ConfigError(
        fmt::format("{}: {} must be HWC or CHW", s.source(), s.key_path("input_order")));
  return m;
}

void parse_run_header(Section& root, EvalConfig& c) {
  c.name = root.required<std::string>("name");
  c.model_type = root.get<std::string>("model_type", c.model_type);
  if (c.model_type != "ImageRestorationModel")
    throw ConfigError(fmt::format("{}: model_type = '{}': only ImageRestorationModel is supported",
                                  root.source(), c.model_type));
  c.manual_seed = root.get<int64_t>("manual_seed", c.manual_seed);
  c.grouped_masks = root.get<bool>("grouped_masks", false);
}

void check_network_matches_datasets(const models::NetworkOptions& network, bool grouped_masks,
                                    const std::vector<DatasetOptions>& datasets,
                                    const std::string& source) {
  const bool seg = network.is_seg();
  for (const auto& d : datasets) {
    if (seg && !d.grouped_masks())
      throw ConfigError(
          fmt::format("{}: network_g.type {} needs grouped masks, but datasets.{}.type is {}",
                      source, network.type, d.key, d.type));
    if (!seg && network.mask && d.type != "PairedImageMaskDataset")
      throw ConfigError(
          fmt::format("{}: network_g.mask is true (CAT variant), which needs "
                      "datasets.{}.type PairedImageMaskDataset, got {}",
                      source, d.key, d.type));
    if (!seg && !network.mask && d.needs_masks())
      throw ConfigError(
          fmt::format("{}: datasets.{}.type {} provides masks, but network_g ({}) takes none",
                      source, d.key, d.type, network.type));
  }
  if (seg && !grouped_masks)
    throw ConfigError(source + ": network_g.type " + network.type +
                      " needs 'grouped_masks: true' at the top level (as in the official configs)");
}

PathOptions parse_path(Section& path) {
  PathOptions p;
  p.pretrain_network_g = path.get<std::string>("pretrain_network_g", "");
  p.strict_load_g = path.get<bool>("strict_load_g", true);
  p.param_key_g = path.get<std::string>("param_key_g", "params");
  return p;
}

ValOptions parse_val(Section& val) {
  const std::string& source = val.source();
  ValOptions v;
  v.save_img = val.get<bool>("save_img", false);
  v.grids = val.get<bool>("grids", false);
  v.crop_size_h = val.get<int64_t>("crop_size_h", 0);
  v.crop_size_w = val.get<int64_t>("crop_size_w", 0);
  v.crop_size_h_ratio = val.get<double>("crop_size_h_ratio", 0.0);
  v.crop_size_w_ratio = val.get<double>("crop_size_w_ratio", 0.0);
  v.max_minibatch = val.get<int64_t>("max_minibatch", 1);
  v.mcr_threshold = val.get<double>("mcr_threshold", 3.0);
  if (v.grids) {
    const bool h_ok = v.crop_size_h > 0 || v.crop_size_h_ratio > 0;
    const bool w_ok = v.crop_size_w > 0 || v.crop_size_w_ratio > 0;
    if (!h_ok || !w_ok)
      throw ConfigError(source +
                        ": val.grids is true but val.crop_size_h/_w (or *_ratio) is not set");
  }
  if (v.max_minibatch < 1) throw ConfigError(source + ": val.max_minibatch must be >= 1");
  Section metrics = val.child("metrics");
  for (const auto& key : metrics.keys()) {
    Section m = metrics.child(key);
    v.metrics.push_back(parse_metric(m, key));
    m.finish(nullptr);
  }
  metrics.finish(nullptr);
  return v;
}

EvalConfig parse_eval_config(const YAML::Node& root_node, const std::string& source) {
  EvalConfig c;
  c.source = source;
  Section root(root_node, "", source);
  parse_run_header(root, c);

  Section datasets = root.child("datasets");
  for (const auto& key : datasets.keys()) {
    if (is_train_dataset(datasets, key)) {
      // Training sets are not evaluated; their keys belong to sdb-train.
      datasets.ignore(key);
      continue;
    }
    Section d = datasets.child(key);
    d.get<std::string>("phase", "val");
    c.datasets.push_back(parse_dataset(d, key));
    d.ignore(kTrainOnlyDatasetKeys);
    d.finish(&c.ignored_keys);
  }
  datasets.finish(&c.ignored_keys);
  if (c.datasets.empty())
    throw ConfigError(source + ": 'datasets' has no test/val dataset to evaluate");

  c.network_g = models::parse_network_options(root.child("network_g"));
  check_network_matches_datasets(c.network_g, c.grouped_masks, c.datasets, source);

  Section path = root.child("path");
  c.path = parse_path(path);
  path.ignore({"resume_state", "root", "experiments_root", "models", "training_states", "log",
               "visualization", "results_root"});
  path.finish(&c.ignored_keys);

  Section val = root.child("val");
  c.val = parse_val(val);
  val.ignore({"val_freq", "use_image", "rgb2bgr"});
  val.finish(&c.ignored_keys);

  root.ignore({"scale", "num_gpu", "dist_params", "train", "logger", "is_train", "dist", "rank",
               "world_size"});
  root.finish(&c.ignored_keys);
  c.resolved = YAML::Clone(root_node);
  return c;
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(yaml_to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return obj;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() != "!") {  // unquoted: try bool / int / float like YAML 1.1 would
        bool b;
        if (YAML::convert<bool>::decode(node, b) && text != "y" && text != "n") return b;
        int64_t i;
        if (YAML::convert<int64_t>::decode(node, i)) return i;
        double d;
        if (YAML::convert<double>::decode(node, d)) return d;
      }
      return text;
    }
  }
  return nullptr;
}

EvalConfig load_eval_config(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root = load_yaml_file(path);
  for (const auto& o : overrides) apply_override(root, o);
  return parse_eval_config(root, path);
}

}  // namespace samdeblur::config
