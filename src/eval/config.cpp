// The evaluation config and its section parsers (eval/config.h).
#include "samdeblur/eval/config.h"

#include <fmt/format.h>

#include "samdeblur/core/error.h"

namespace samdeblur::eval {

void parse_run_header(config::Section& root, EvalConfig& c) {
  c.name = root.required<std::string>("name");
  c.model_type = root.get<std::string>("model_type", c.model_type);
  if (c.model_type != "ImageRestorationModel")
    throw ConfigError(fmt::format("{}: model_type = '{}': only ImageRestorationModel is supported",
                                  root.source(), c.model_type));
  c.manual_seed = root.get<int64_t>("manual_seed", c.manual_seed);
  c.grouped_masks = root.get<bool>("grouped_masks", false);
}

void check_network_matches_datasets(const models::NetworkOptions& network, bool grouped_masks,
                                    const std::vector<dataset::DatasetOptions>& datasets,
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

PathOptions parse_path(config::Section& path) {
  PathOptions p;
  p.pretrain_network_g = path.get<std::string>("pretrain_network_g", "");
  p.strict_load_g = path.get<bool>("strict_load_g", true);
  p.param_key_g = path.get<std::string>("param_key_g", "params");
  return p;
}

ValOptions parse_val(config::Section& val) {
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
  v.precision = val.get<std::string>("precision", "fp32");
  v.memory_format = val.get<std::string>("memory_format", models::kInferenceMemoryFormat);
  models::parse_execution(v.precision, v.memory_format, source + ": val");  // checks the values
  if (v.grids) {
    const bool h_ok = v.crop_size_h > 0 || v.crop_size_h_ratio > 0;
    const bool w_ok = v.crop_size_w > 0 || v.crop_size_w_ratio > 0;
    if (!h_ok || !w_ok)
      throw ConfigError(source +
                        ": val.grids is true but val.crop_size_h/_w (or *_ratio) is not set");
  }
  if (v.max_minibatch < 1) throw ConfigError(source + ": val.max_minibatch must be >= 1");
  config::Section list = val.child("metrics");
  for (const auto& key : list.keys()) {
    config::Section m = list.child(key);
    v.metrics.push_back(metrics::parse_metric(m, key));
    m.finish(nullptr);
  }
  list.finish(nullptr);
  v.align = metrics::parse_alignment(val.get<std::string>("align", "none"), source,
                                     val.key_path("align"));
  if (v.align == metrics::Alignment::realblur)
    for (const auto& m : v.metrics)
      if (m.crop_border != 0 || m.test_y_channel)
        throw ConfigError(
            fmt::format("{}: val.align is realblur, which scores RGB images without a crop border; "
                        "val.metrics.{} sets crop_border {} / test_y_channel {}",
                        source, m.name, m.crop_border, m.test_y_channel));
  return v;
}

EvalConfig parse_eval_config(const YAML::Node& root_node, const std::string& source) {
  EvalConfig c;
  c.source = source;
  config::Section root(root_node, "", source);
  parse_run_header(root, c);

  config::Section datasets = root.child("datasets");
  for (const auto& key : datasets.keys()) {
    if (dataset::is_train_dataset(datasets, key)) {
      // Training sets are not evaluated; their keys belong to sdb-train.
      datasets.ignore(key);
      continue;
    }
    config::Section d = datasets.child(key);
    d.get<std::string>("phase", "val");
    c.datasets.push_back(dataset::parse_dataset(d, key));
    d.ignore(dataset::kTrainOnlyDatasetKeys);
    d.finish(&c.ignored_keys);
  }
  datasets.finish(&c.ignored_keys);
  if (c.datasets.empty())
    throw ConfigError(source + ": 'datasets' has no test/val dataset to evaluate");

  c.network_g = models::parse_network_options(root.child("network_g"));
  check_network_matches_datasets(c.network_g, c.grouped_masks, c.datasets, source);

  config::Section path = root.child("path");
  c.path = parse_path(path);
  path.ignore({"resume_state", "root", "experiments_root", "models", "training_states", "log",
               "visualization", "results_root"});
  path.finish(&c.ignored_keys);

  config::Section val = root.child("val");
  c.val = parse_val(val);
  val.ignore({"val_freq", "use_image", "rgb2bgr"});
  val.finish(&c.ignored_keys);

  root.ignore({"scale", "num_gpu", "dist_params", "train", "logger", "is_train", "dist", "rank",
               "world_size"});
  root.finish(&c.ignored_keys);
  c.resolved = YAML::Clone(root_node);
  return c;
}

EvalConfig load_eval_config(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root = config::load_yaml_file(path);
  for (const auto& o : overrides) config::apply_override(root, o);
  return parse_eval_config(root, path);
}

}  // namespace samdeblur::eval
