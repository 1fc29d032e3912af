#include "samdeblur/config/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace samdeblur::config {

namespace {

// Rethrows a ConfigError of MaskGeneratorOptions::validate() ("option: ...")
// with the file and the dotted section path in front.
void validate_generator(const sam::MaskGeneratorOptions& g, const Section& s) {
  try {
    g.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: {}.{}", s.source(), s.path(), e.what()));
  }
}

// point_grids: a list of grids, each a list of [x, y] pairs in [0, 1].
std::vector<torch::Tensor> parse_point_grids(const YAML::Node& node, const Section& s) {
  const std::string where = s.key_path("point_grids");
  std::vector<torch::Tensor> grids;
  if (!node.IsSequence())
    throw ConfigError(fmt::format("{}: {} must be a list of grids (lists of [x, y] in [0, 1])",
                                  s.source(), where));
  for (std::size_t i = 0; i < node.size(); ++i) {
    std::vector<double> flat;
    try {
      for (const auto& p : node[i]) {
        const auto xy = p.as<std::vector<double>>();
        if (xy.size() != 2) throw YAML::Exception(YAML::Mark::null_mark(), "not a pair");
        flat.insert(flat.end(), xy.begin(), xy.end());
      }
    } catch (const YAML::Exception&) {
      throw ConfigError(fmt::format("{}: {}[{}] must be a list of [x, y] pairs", s.source(),
                                    where, i));
    }
    for (double v : flat)
      if (!(v >= 0.0 && v <= 1.0))
        throw ConfigError(fmt::format("{}: {}[{}]: coordinates must lie in [0, 1], got {}",
                                      s.source(), where, i, v));
    const auto n = static_cast<int64_t>(flat.size() / 2);
    grids.push_back(torch::tensor(flat, torch::kFloat64).reshape({n, 2}));
  }
  return grids;
}

sam::MaskGeneratorOptions parse_generator(Section g) {
  sam::MaskGeneratorOptions o;
  const YAML::Node pps = g.node().IsMap() ? g.node()["points_per_side"] : YAML::Node();
  const bool pps_null = pps.IsDefined() && pps.IsNull();
  const auto pps_value = g.optional<int64_t>("points_per_side");
  g.ignore("point_grids");  // read below from the node (a nested list)
  const YAML::Node grids = g.node().IsMap() ? g.node()["point_grids"] : YAML::Node();
  if (grids.IsDefined() && !grids.IsNull()) {
    if (pps_value)
      throw ConfigError(fmt::format("{}: {} and {}: give exactly one of them (as the official "
                                    "SamAutomaticMaskGenerator)",
                                    g.source(), g.key_path("points_per_side"),
                                    g.key_path("point_grids")));
    o.points_per_side.reset();
    o.point_grids = parse_point_grids(grids, g);
  } else if (pps_null) {
    throw ConfigError(fmt::format("{}: {} is null but {} is not given", g.source(),
                                  g.key_path("points_per_side"), g.key_path("point_grids")));
  } else if (pps_value) {
    o.points_per_side = *pps_value;
  }
  o.points_per_batch = g.get<int64_t>("points_per_batch", o.points_per_batch);
  o.pred_iou_thresh = g.get<double>("pred_iou_thresh", o.pred_iou_thresh);
  o.stability_score_thresh = g.get<double>("stability_score_thresh", o.stability_score_thresh);
  o.stability_score_offset = g.get<double>("stability_score_offset", o.stability_score_offset);
  o.box_nms_thresh = g.get<double>("box_nms_thresh", o.box_nms_thresh);
  o.crop_n_layers = g.get<int64_t>("crop_n_layers", o.crop_n_layers);
  o.crop_nms_thresh = g.get<double>("crop_nms_thresh", o.crop_nms_thresh);
  o.crop_overlap_ratio = g.get<double>("crop_overlap_ratio", o.crop_overlap_ratio);
  o.crop_n_points_downscale_factor =
      g.get<int64_t>("crop_n_points_downscale_factor", o.crop_n_points_downscale_factor);
  o.min_mask_region_area = g.get<int64_t>("min_mask_region_area", o.min_mask_region_area);
  // Masks are rasterised into label maps; the output format does not matter.
  o.output_mode = sam::OutputMode::uncompressed_rle;
  g.finish(nullptr);
  validate_generator(o, g);
  return o;
}

MaskSourceOptions parse_mask_source(Section& d, const std::string& dataset_type) {
  const YAML::Node node = d.node()["mask_source"];
  if (!node.IsMap())
    throw ConfigError(fmt::format("{}: {} must be a mapping with a 'type' (sam or superpixels)",
                                  d.source(), d.key_path("mask_source")));
  Section s = d.child("mask_source");
  MaskSourceOptions m;
  m.type = s.required<std::string>("type");
  if (m.type != "sam" && m.type != "superpixels")
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: sam, superpixels",
                                  s.source(), s.key_path("type"), m.type));
  m.cache_dir = s.get<std::string>("cache_dir", "");
  m.encoding = s.get<std::string>("encoding", "official");
  if (m.encoding != "official" && m.encoding != "exclusive")
    throw ConfigError(fmt::format("{}: {} must be 'official' or 'exclusive', got '{}'",
                                  s.source(), s.key_path("encoding"), m.encoding));
  if (m.encoding == "exclusive") {
    if (dataset_type != "PairedImageGroupMaskDataset")
      throw ConfigError(fmt::format(
          "{}: {} = exclusive needs PairedImageGroupMaskDataset (a label map for the CAT "
          "channel is always the official draw_segmask)",
          s.source(), s.key_path("encoding")));
    m.exclusive_order = s.get<std::string>("exclusive_order", "generator");
    if (m.exclusive_order != "generator" && m.exclusive_order != "smallest_first")
      throw ConfigError(fmt::format("{}: {} must be 'generator' or 'smallest_first', got '{}'",
                                    s.source(), s.key_path("exclusive_order"), m.exclusive_order));
  }
  if (m.type == "sam") {
    m.checkpoint = s.required<std::string>("checkpoint");
    m.model_type = s.get<std::string>("model_type", "auto");
    if (m.model_type != "auto" && m.model_type != "vit_b" && m.model_type != "vit_l" &&
        m.model_type != "vit_h")
      throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: auto, vit_b, vit_l, "
                                    "vit_h",
                                    s.source(), s.key_path("model_type"), m.model_type));
    m.rgb = s.get<bool>("rgb", false);
    m.generator = parse_generator(s.child("generator"));
  } else {
    m.superpixels.region_size = s.get<int>("region_size", m.superpixels.region_size);
    m.superpixels.ruler = static_cast<float>(s.get<double>("ruler", m.superpixels.ruler));
    m.superpixels.iterations = s.get<int>("iterations", m.superpixels.iterations);
    m.superpixels.min_element_size_percent =
        s.get<int>("min_element_size_percent", m.superpixels.min_element_size_percent);
    if (m.superpixels.region_size < 1 || m.superpixels.iterations < 1 ||
        m.superpixels.ruler <= 0 || m.superpixels.min_element_size_percent < 0)
      throw ConfigError(fmt::format(
          "{}: {}: region_size and iterations must be >= 1, ruler > 0, "
          "min_element_size_percent >= 0",
          s.source(), s.path()));
  }
  s.finish(nullptr);
  return m;
}

}  // namespace

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
      d.mask_source = parse_mask_source(s, d.type);
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
