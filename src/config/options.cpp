#include "samdeblur/config/options.h"

#include <fmt/format.h>

namespace samdeblur::config {

namespace {

const char* const kDatasetTypes[] = {"PairedImageDataset", "PairedImageMaskDataset",
                                     "PairedImageGroupMaskDataset"};

DatasetOptions parse_dataset(Section& s, const std::string& key) {
  DatasetOptions d;
  d.key = key;
  d.name = s.get<std::string>("name", key);
  d.type = s.required<std::string>("type");
  bool known = false;
  for (const char* t : kDatasetTypes) known = known || d.type == t;
  if (!known)
    throw ConfigError(fmt::format(
        "{}: {} = '{}' is not supported; valid: PairedImageDataset, PairedImageMaskDataset, "
        "PairedImageGroupMaskDataset",
        s.source(), s.key_path("type"), d.type));
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
  // Keys of the official schema that an evaluation does not use.
  s.ignore({"phase", "scale", "mean", "std", "meta_info_file", "gt_size", "use_flip", "use_rot",
            "use_shuffle", "num_worker_per_gpu", "batch_size_per_gpu", "dataset_enlarge_ratio",
            "prefetch_mode", "pin_memory", "persistent_workers"});
  return d;
}

MetricOptions parse_metric(Section& s, const std::string& name) {
  MetricOptions m;
  m.name = name;
  m.type = s.required<std::string>("type");
  if (m.type != "calculate_psnr" && m.type != "calculate_ssim")
    throw ConfigError(
        fmt::format("{}: {} = '{}' is not supported; valid: calculate_psnr, calculate_ssim",
                    s.source(), s.key_path("type"), m.type));
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

}  // namespace

models::NetworkOptions parse_network_options(Section s) {
  models::NetworkOptions n;
  n.type = s.required<std::string>("type");
  if (n.type != "NAFNet" && n.type != "NAFNetLocal" && n.type != "SegNAFNet" &&
      n.type != "SegNAFNetLocal")
    throw ConfigError(
        fmt::format("{}: {} = '{}' is not a known network; valid: NAFNet, NAFNetLocal, "
                    "SegNAFNet, SegNAFNetLocal",
                    s.source(), s.key_path("type"), n.type));
  n.img_channel = s.get<int64_t>("img_channel", n.img_channel);
  n.width = s.get<int64_t>("width", n.width);
  n.middle_blk_num = s.get<int64_t>("middle_blk_num", n.middle_blk_num);
  n.enc_blk_nums = s.get<std::vector<int64_t>>("enc_blk_nums", n.enc_blk_nums);
  n.dec_blk_nums = s.get<std::vector<int64_t>>("dec_blk_nums", n.dec_blk_nums);
  const bool seg = n.type == "SegNAFNet" || n.type == "SegNAFNetLocal";
  const bool local = n.type == "NAFNetLocal" || n.type == "SegNAFNetLocal";
  // Constructor arguments the official class does not take are an error there
  // (TypeError); here too, with the key named.
  if (seg) {
    n.seg_channel = s.get<int64_t>("seg_channel", n.seg_channel);
    n.mask_dropout = s.get<double>("mask_dropout", n.mask_dropout);
  } else {
    n.mask = s.get<bool>("mask", n.mask);
  }
  if (local) {
    n.train_size = s.get<std::vector<int64_t>>("train_size", n.train_size);
    n.fast_imp = s.get<bool>("fast_imp", n.fast_imp);
  }
  n.drop_out_rate = s.get<double>("drop_out_rate", n.drop_out_rate);
  s.finish(nullptr);
  n.validate();
  return n;
}

EvalConfig parse_eval_config(const YAML::Node& root_node, const std::string& source) {
  EvalConfig c;
  c.source = source;
  Section root(root_node, "", source);
  c.name = root.required<std::string>("name");
  c.model_type = root.get<std::string>("model_type", c.model_type);
  if (c.model_type != "ImageRestorationModel")
    throw ConfigError(fmt::format("{}: model_type = '{}': only ImageRestorationModel is supported",
                                  source, c.model_type));
  c.manual_seed = root.get<int64_t>("manual_seed", c.manual_seed);
  c.grouped_masks = root.get<bool>("grouped_masks", false);

  Section datasets = root.child("datasets");
  for (const auto& key : datasets.keys()) {
    Section d = datasets.child(key);
    const std::string phase =
        d.get<std::string>("phase", key.rfind("train", 0) == 0 ? "train" : "val");
    if (phase == "train") {
      // Training sets are not evaluated; their keys belong to sdb-train.
      datasets.ignore(key);
      continue;
    }
    c.datasets.push_back(parse_dataset(d, key));
    d.finish(&c.ignored_keys);
  }
  datasets.finish(&c.ignored_keys);
  if (c.datasets.empty())
    throw ConfigError(source + ": 'datasets' has no test/val dataset to evaluate");

  c.network_g = parse_network_options(root.child("network_g"));
  for (const auto& d : c.datasets) {
    const bool seg = c.network_g.is_seg();
    if (seg && !d.grouped_masks())
      throw ConfigError(
          fmt::format("{}: network_g.type {} needs grouped masks, but datasets.{}.type is {}",
                      source, c.network_g.type, d.key, d.type));
    if (!seg && c.network_g.mask && d.type != "PairedImageMaskDataset")
      throw ConfigError(
          fmt::format("{}: network_g.mask is true (CAT variant), which needs "
                      "datasets.{}.type PairedImageMaskDataset, got {}",
                      source, d.key, d.type));
    if (!seg && !c.network_g.mask && d.needs_masks())
      throw ConfigError(
          fmt::format("{}: datasets.{}.type {} provides masks, but network_g ({}) takes none",
                      source, d.key, d.type, c.network_g.type));
  }
  if (c.network_g.is_seg() && !c.grouped_masks)
    throw ConfigError(source + ": network_g.type " + c.network_g.type +
                      " needs 'grouped_masks: true' at the top level (as in the official configs)");

  Section path = root.child("path");
  c.path.pretrain_network_g = path.get<std::string>("pretrain_network_g", "");
  c.path.strict_load_g = path.get<bool>("strict_load_g", true);
  c.path.param_key_g = path.get<std::string>("param_key_g", "params");
  path.ignore({"resume_state", "root", "experiments_root", "models", "training_states", "log",
               "visualization", "results_root"});
  path.finish(&c.ignored_keys);

  Section val = root.child("val");
  c.val.save_img = val.get<bool>("save_img", false);
  c.val.grids = val.get<bool>("grids", false);
  c.val.crop_size_h = val.get<int64_t>("crop_size_h", 0);
  c.val.crop_size_w = val.get<int64_t>("crop_size_w", 0);
  c.val.crop_size_h_ratio = val.get<double>("crop_size_h_ratio", 0.0);
  c.val.crop_size_w_ratio = val.get<double>("crop_size_w_ratio", 0.0);
  c.val.max_minibatch = val.get<int64_t>("max_minibatch", 1);
  c.val.mcr_threshold = val.get<double>("mcr_threshold", 3.0);
  if (c.val.grids) {
    const bool h_ok = c.val.crop_size_h > 0 || c.val.crop_size_h_ratio > 0;
    const bool w_ok = c.val.crop_size_w > 0 || c.val.crop_size_w_ratio > 0;
    if (!h_ok || !w_ok)
      throw ConfigError(source +
                        ": val.grids is true but val.crop_size_h/_w (or *_ratio) is not set");
  }
  if (c.val.max_minibatch < 1) throw ConfigError(source + ": val.max_minibatch must be >= 1");
  Section metrics = val.child("metrics");
  for (const auto& key : metrics.keys()) {
    Section m = metrics.child(key);
    c.val.metrics.push_back(parse_metric(m, key));
    m.finish(nullptr);
  }
  metrics.finish(nullptr);
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
