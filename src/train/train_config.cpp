#include "samdeblur/train/train_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "samdeblur/core/error.h"
#include "samdeblur/dataset/paired.h"

namespace samdeblur::train {

namespace {

SchedulerOptions parse_scheduler(config::Section s, int64_t total_iter) {
  SchedulerOptions c;
  c.type = s.required<std::string>("type");
  c.T_max = s.get<int64_t>("T_max", c.T_max);
  c.eta_min = s.get<double>("eta_min", c.eta_min);
  c.milestones = s.get<std::vector<int64_t>>("milestones", c.milestones);
  c.gamma = s.get<double>("gamma", c.gamma);
  c.periods = s.get<std::vector<int64_t>>("periods", c.periods);
  c.restart_weights = s.get<std::vector<double>>("restart_weights", c.restart_weights);
  c.restarts = s.get<std::vector<int64_t>>("restarts", c.restarts);
  c.total_iter = total_iter;
  s.finish(nullptr);
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(s.source() + ": " + e.what());
  }
  return c;
}

OptimizerOptions parse_optimizer(config::Section s) {
  OptimizerOptions o;
  o.type = s.required<std::string>("type");
  o.lr = s.required<double>("lr");
  o.weight_decay = s.optional<double>("weight_decay");  // unset: torch's default for the type
  if (s.has("betas")) {
    const auto b = s.get<std::vector<double>>("betas", {});
    if (b.size() != 2)
      throw ConfigError(fmt::format("{}: {} must be two numbers", s.source(), s.key_path("betas")));
    o.betas = {b[0], b[1]};
  }
  o.eps = s.get<double>("eps", o.eps);
  o.amsgrad = s.get<bool>("amsgrad", o.amsgrad);
  if (o.type == "SGD") {
    o.momentum = s.get<double>("momentum", o.momentum);
    o.dampening = s.get<double>("dampening", o.dampening);
    o.nesterov = s.get<bool>("nesterov", o.nesterov);
  }
  s.finish(nullptr);
  try {
    o.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(s.source() + ": " + e.what());
  }
  return o;
}

void require_positive(int64_t v, const config::Section& s, const std::string& key) {
  if (v <= 0)
    throw ConfigError(fmt::format("{}: {} must be > 0, got {}", s.source(), s.key_path(key), v));
}

// datasets.<train_key>: the common dataset keys through dataset::parse_dataset,
// then what only training reads; validated once, by TrainDatasetOptions.
TrainDatasetOptions parse_train_set(config::Section& datasets, const std::string& key,
                                    std::vector<std::string>& ignored) {
  config::Section ds = datasets.child(key);
  if (!ds.node().IsMap())
    throw ConfigError(fmt::format("{}: {} must be a mapping", ds.source(), ds.path()));
  TrainDatasetOptions t;
  ds.get<std::string>("phase", "train");
  t.base = dataset::parse_dataset(ds, key);
  t.gt_size = ds.get<int64_t>("gt_size", t.gt_size);
  t.use_flip = ds.get<bool>("use_flip", t.use_flip);
  t.use_rot = ds.get<bool>("use_rot", t.use_rot);
  t.use_shuffle = ds.get<bool>("use_shuffle", t.use_shuffle);
  t.batch_size_per_gpu = ds.required<int64_t>("batch_size_per_gpu");
  t.num_worker_per_gpu = ds.get<int64_t>("num_worker_per_gpu", t.num_worker_per_gpu);
  t.dataset_enlarge_ratio = ds.get<int64_t>("dataset_enlarge_ratio", t.dataset_enlarge_ratio);
  t.mask_rotation = ds.get<std::string>("mask_rotation", t.mask_rotation);
  t.prefetch = ds.get<int64_t>("prefetch", t.prefetch);
  ds.finish(&ignored);
  try {
    t.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(ds.source() + ": " + e.what());  // validate() names datasets.<key>.<key>
  }
  return t;
}

}  // namespace

models::ExecutionOptions TrainOptions::execution() const {
  return models::parse_execution("fp32", memory_format, "train.memory_format");
}

namespace {

TrainOptions parse_train_options(config::Section& train) {
  const std::string& source = train.source();
  TrainOptions t;
  t.optim_g = parse_optimizer(train.child("optim_g"));
  t.total_iter = train.required<int64_t>("total_iter");
  require_positive(t.total_iter, train, "total_iter");
  t.scheduler = parse_scheduler(train.child("scheduler"), t.total_iter);
  t.warmup_iter = train.get<int64_t>("warmup_iter", -1);
  t.use_grad_clip = train.get<bool>("use_grad_clip", true);
  t.grad_clip_norm = train.get<double>("grad_clip_norm", t.grad_clip_norm);
  t.skip_nonfinite = train.get<bool>("skip_nonfinite", false);
  t.amp = train.get<std::string>("amp", "none");
  if (t.amp != "none" && t.amp != "bf16" && t.amp != "fp16")
    throw ConfigError(fmt::format("{}: {} must be none, bf16 or fp16, got '{}'", source,
                                  train.key_path("amp"), t.amp));
  t.memory_format = train.get<std::string>("memory_format", t.memory_format);
  models::parse_execution("fp32", t.memory_format, source + ": " + train.key_path("memory_format"));
  if (t.memory_format == "auto")  // inference's default (models/execution.h), not training's
    throw ConfigError(
        fmt::format("{}: {} 'auto' is for inference; training takes contiguous "
                    "(default, exact) or channels_last",
                    source, train.key_path("memory_format")));
  if (train.get<bool>("channels_last", false)) {  // the older spelling
    if (train.has("memory_format") && t.memory_format != "channels_last")
      throw ConfigError(fmt::format("{}: {} is true but {} is '{}'", source,
                                    train.key_path("channels_last"),
                                    train.key_path("memory_format"), t.memory_format));
    t.memory_format = "channels_last";
  }
  if (train.get<bool>("mixup", false)) throw ConfigError(source + ": train.mixup is not supported");
  if (!train.has("pixel_opt"))
    throw ConfigError(source + ": required key 'train.pixel_opt' is missing");
  config::Section pix = train.child("pixel_opt");
  const std::string type = pix.required<std::string>("type");
  if (type != "PSNRLoss")
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: PSNRLoss", source,
                                  pix.key_path("type"), type));
  t.loss_weight = pix.get<double>("loss_weight", 1.0);
  t.loss_to_y = pix.get<bool>("toY", false);
  const std::string reduction = pix.get<std::string>("reduction", "mean");
  if (reduction != "mean")
    throw ConfigError(fmt::format("{}: {} must be 'mean' (PSNRLoss), got '{}'", source,
                                  pix.key_path("reduction"), reduction));
  pix.finish(nullptr);
  if (train.has("perceptual_opt"))
    throw ConfigError(source + ": train.perceptual_opt is not supported");
  return t;
}

LoggerOptions parse_logger(config::Section& lg) {
  LoggerOptions l;
  l.print_freq = lg.get<int64_t>("print_freq", l.print_freq);
  l.save_checkpoint_freq = lg.get<int64_t>("save_checkpoint_freq", l.save_checkpoint_freq);
  l.use_tb_logger = lg.get<bool>("use_tb_logger", l.use_tb_logger);
  l.keep_last = lg.get<int64_t>("keep_last", l.keep_last);
  require_positive(l.print_freq, lg, "print_freq");
  require_positive(l.save_checkpoint_freq, lg, "save_checkpoint_freq");
  require_positive(l.keep_last, lg, "keep_last");
  lg.ignore({"wandb"});
  return l;
}

// datasets: exactly one training set, any number of validation sets.
void parse_datasets(config::Section& root, TrainConfig& c) {
  const std::string& source = root.source();
  if (!root.node()["datasets"].IsMap())
    throw ConfigError(source + ": required key 'datasets' is missing or not a mapping");
  config::Section datasets = root.child("datasets");
  std::string train_key;
  for (const auto& key : datasets.keys()) {
    if (!dataset::is_train_dataset(datasets, key)) continue;
    if (!train_key.empty())
      throw ConfigError(
          fmt::format("{}: two training datasets (datasets.{} and datasets.{}); "
                      "exactly one is supported",
                      source, train_key, key));
    train_key = key;
  }
  if (train_key.empty())
    throw ConfigError(source + ": 'datasets' has no training dataset (datasets.train)");
  for (const auto& key : datasets.keys()) {
    if (key == train_key) {
      c.train_set = parse_train_set(datasets, key, c.ignored_keys);
      continue;
    }
    config::Section d = datasets.child(key);
    d.get<std::string>("phase", "val");
    c.val_datasets.push_back(dataset::parse_dataset(d, key));
    d.ignore(dataset::kTrainOnlyDatasetKeys);
    d.finish(&c.ignored_keys);
  }
  datasets.finish(&c.ignored_keys);
}

}  // namespace

eval::EvalConfig TrainConfig::eval_view() const {
  eval::EvalConfig e;
  e.source = source;
  e.name = name;
  e.manual_seed = manual_seed;
  e.grouped_masks = grouped_masks;
  e.datasets = val_datasets;
  e.network_g = network_g;
  e.path = path;
  e.val = val;
  e.resolved = resolved;
  return e;
}

TrainConfig parse_train_config(const YAML::Node& root_node, const std::string& source) {
  TrainConfig c;
  c.source = source;
  if (!root_node.IsMap()) throw ConfigError(source + ": top level of a config must be a mapping");
  config::Section root(root_node, "", source);
  {
    eval::EvalConfig header;
    eval::parse_run_header(root, header);
    c.name = header.name;
    c.manual_seed = header.manual_seed;
    c.grouped_masks = header.grouped_masks;
  }
  c.num_gpu = root.get<int64_t>("num_gpu", 1);
  const int64_t scale = root.get<int64_t>("scale", 1);
  if (scale != 1)
    throw ConfigError(fmt::format("{}: scale must be 1 for deblurring, got {}", source, scale));

  parse_datasets(root, c);
  c.network_g = models::parse_network_options(root.child("network_g"));
  std::vector<dataset::DatasetOptions> all = {c.train_set.base};
  all.insert(all.end(), c.val_datasets.begin(), c.val_datasets.end());
  eval::check_network_matches_datasets(c.network_g, c.grouped_masks, all, source);

  {
    config::Section path = root.child("path");
    c.path = eval::parse_path(path);
    c.resume_state = path.get<std::string>("resume_state", "");
    c.experiments_root = path.get<std::string>("experiments_root", "experiments/" + c.name);
    // Official name of the checkpoint key option in ImageRestorationModel.
    if (path.has("param_key")) c.path.param_key_g = path.get<std::string>("param_key", "params");
    path.ignore({"root", "models", "training_states", "log", "visualization", "results_root"});
    path.finish(&c.ignored_keys);
  }
  {
    config::Section val = root.child("val");
    c.val = eval::parse_val(val);
    c.val_freq = val.get<int64_t>("val_freq", 0);
    if (c.val_freq < 0) throw ConfigError(source + ": val.val_freq must be >= 0");
    if (c.val_freq > 0 && c.val_datasets.empty())
      throw ConfigError(source + ": val.val_freq is set but 'datasets' has no validation dataset");
    val.ignore({"use_image", "rgb2bgr"});
    val.finish(&c.ignored_keys);
  }
  {
    if (!root.has("train")) throw ConfigError(source + ": required key 'train' is missing");
    config::Section train = root.child("train");
    c.train = parse_train_options(train);
    train.finish(&c.ignored_keys);
  }
  {
    config::Section lg = root.child("logger");
    c.logger = parse_logger(lg);
    lg.finish(&c.ignored_keys);
  }
  {
    config::Section dp = root.child("dist_params");
    c.dist_backend = dp.get<std::string>("backend", "gloo");
    if (c.dist_backend != "gloo" && c.dist_backend != "nccl")
      throw ConfigError(fmt::format("{}: dist_params.backend must be gloo or nccl, got '{}'",
                                    source, c.dist_backend));
    c.dist_port = dp.get<int64_t>("port", 29500);
    dp.finish(&c.ignored_keys);
  }
  root.ignore({"is_train", "dist", "rank", "world_size"});
  root.finish(&c.ignored_keys);
  c.resolved = YAML::Clone(root_node);
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root = config::load_yaml_file(path);
  for (const auto& o : overrides) config::apply_override(root, o);
  return parse_train_config(root, path);
}

void check_data(const TrainConfig& cfg) {
  auto check = [&cfg](const dataset::DatasetOptions& d, int64_t min_count) {
    const std::string prefix = cfg.source + ": datasets." + d.key;
    for (const auto& [key, dir] :
         {std::pair<std::string, std::string>{"dataroot_gt", d.dataroot_gt},
          {"dataroot_lq", d.dataroot_lq},
          {"dataroot_mask", d.dataroot_mask}}) {
      if (dir.empty()) continue;
      if (!std::filesystem::is_directory(dir))
        throw ConfigError(fmt::format("{}.{}: folder '{}' does not exist", prefix, key, dir));
    }
    std::size_t n = 0;
    try {
      n = dataset::list_samples(d).size();
    } catch (const Error& e) {
      throw ConfigError(fmt::format("{}: {}", prefix, e.what()));
    }
    if (static_cast<int64_t>(n) < min_count)
      throw ConfigError(fmt::format("{}: {} samples in '{}', need at least {}", prefix, n,
                                    d.dataroot_lq, min_count));
  };
  check(cfg.train_set.base, 1);
  for (const auto& d : cfg.val_datasets) check(d, 1);
  if (!cfg.path.pretrain_network_g.empty() &&
      !std::filesystem::is_regular_file(cfg.path.pretrain_network_g))
    throw ConfigError(fmt::format("{}: path.pretrain_network_g: file '{}' does not exist",
                                  cfg.source, cfg.path.pretrain_network_g));
}

}  // namespace samdeblur::train
