#include "samdeblur/train/checkpoint.h"

#include <ATen/Context.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/torch_compat.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/train/tb_writer.h"

namespace samdeblur::train {

namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;

compat::OptimizerStateKey param_key_of(const torch::Tensor& p) {
  return compat::optimizer_state_key(p);
}

uint32_t file_crc(const std::string& path, uint64_t* size) {
  const auto bytes = read_file_bytes(path);
  *size = bytes.size();
  return crc32c(bytes.data(), bytes.size());
}

nlohmann::json file_entry(const std::string& dir, const std::string& rel) {
  uint64_t size = 0;
  const uint32_t crc = file_crc(dir + "/" + rel, &size);
  return {{"path", rel}, {"size", size}, {"crc32c", crc}};
}

// Adam and AdamW keep the same per-parameter state; one template serves both.
template <typename State>
void export_state(torch::optim::Optimizer& opt,
                  const std::vector<std::pair<std::string, torch::Tensor>>& named,
                  io::StateDict& sd, nlohmann::json& steps) {
  for (const auto& [name, p] : named) {
    auto it = opt.state().find(param_key_of(p));
    if (it == opt.state().end()) continue;  // never stepped
    auto& s = static_cast<State&>(*it->second);
    steps[name] = s.step();
    sd.emplace_back("optim.exp_avg." + name, s.exp_avg().detach().cpu().contiguous());
    sd.emplace_back("optim.exp_avg_sq." + name, s.exp_avg_sq().detach().cpu().contiguous());
    if (s.max_exp_avg_sq().defined() && s.max_exp_avg_sq().numel() > 0)
      sd.emplace_back("optim.max_exp_avg_sq." + name,
                      s.max_exp_avg_sq().detach().cpu().contiguous());
  }
}

template <typename State>
void import_state(torch::optim::Optimizer& opt,
                  const std::vector<std::pair<std::string, torch::Tensor>>& named,
                  const std::map<std::string, torch::Tensor>& tensors, const nlohmann::json& steps,
                  const std::string& source) {
  opt.state().clear();
  for (const auto& [name, p] : named) {
    if (!steps.contains(name)) continue;
    auto find = [&](const std::string& key) -> torch::Tensor {
      auto it = tensors.find(key);
      if (it == tensors.end()) return {};
      if (it->second.sizes() != p.sizes())
        throw FileError(
            source, fmt::format("optimizer tensor '{}' has shape {} but the parameter has {}", key,
                                fmt::join(it->second.sizes(), "x"), fmt::join(p.sizes(), "x")));
      return it->second.to(p.device(), p.scalar_type()).clone();
    };
    auto state = std::make_unique<State>();
    state->step(steps[name].template get<int64_t>());
    auto avg = find("optim.exp_avg." + name), avg_sq = find("optim.exp_avg_sq." + name);
    if (!avg.defined() || !avg_sq.defined())
      throw FileError(source, "optimizer state for '" + name + "' is incomplete");
    state->exp_avg(avg);
    state->exp_avg_sq(avg_sq);
    auto max_sq = find("optim.max_exp_avg_sq." + name);
    if (max_sq.defined()) state->max_exp_avg_sq(max_sq);
    opt.state()[param_key_of(p)] = std::move(state);
  }
}

void export_sgd(torch::optim::Optimizer& opt,
                const std::vector<std::pair<std::string, torch::Tensor>>& named, io::StateDict& sd,
                nlohmann::json& steps) {
  for (const auto& [name, p] : named) {
    auto it = opt.state().find(param_key_of(p));
    if (it == opt.state().end()) continue;
    auto& s = static_cast<torch::optim::SGDParamState&>(*it->second);
    steps[name] = 0;
    sd.emplace_back("optim.momentum_buffer." + name,
                    s.momentum_buffer().detach().cpu().contiguous());
  }
}

void import_sgd(torch::optim::Optimizer& opt,
                const std::vector<std::pair<std::string, torch::Tensor>>& named,
                const std::map<std::string, torch::Tensor>& tensors, const nlohmann::json& steps,
                const std::string& source) {
  opt.state().clear();
  for (const auto& [name, p] : named) {
    if (!steps.contains(name)) continue;
    auto it = tensors.find("optim.momentum_buffer." + name);
    if (it == tensors.end() || it->second.sizes() != p.sizes())
      throw FileError(source, "optimizer state for '" + name + "' is missing or mis-shaped");
    auto state = std::make_unique<torch::optim::SGDParamState>();
    state->momentum_buffer(it->second.to(p.device(), p.scalar_type()).clone());
    opt.state()[param_key_of(p)] = std::move(state);
  }
}

std::string optimizer_type(torch::optim::Optimizer& opt) {
  if (dynamic_cast<torch::optim::AdamW*>(&opt)) return "AdamW";
  if (dynamic_cast<torch::optim::Adam*>(&opt)) return "Adam";
  if (dynamic_cast<torch::optim::SGD*>(&opt)) return "SGD";
  throw Error("CheckpointManager: only AdamW, Adam and SGD optimizers are supported");
}

std::string json_path_for(const std::string& path) {
  static const std::string pth = ".state.pth";
  if (path.size() > pth.size() && path.compare(path.size() - pth.size(), pth.size(), pth) == 0)
    return path.substr(0, path.size() - pth.size()) + ".state.json";
  return path;
}

}  // namespace

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

CheckpointManager::CheckpointManager(std::string experiment_dir, int64_t keep_last,
                                     std::string param_key)
    : dir_(std::move(experiment_dir)),
      keep_last_(std::max<int64_t>(1, keep_last)),
      param_key_(std::move(param_key)) {}

std::string CheckpointManager::save_network(torch::nn::Module& net,
                                            const std::string& label) const {
  io::StateDict sd;
  for (const auto& kv : net.named_parameters())
    sd.emplace_back(kv.key(), kv.value().detach().cpu().contiguous());
  for (const auto& kv : net.named_buffers())
    sd.emplace_back(kv.key(), kv.value().detach().cpu().contiguous());
  const std::string path = models_dir() + "/net_g_" + label + ".pth";
  io::save_state_dict_file(path, sd, param_key_);
  return path;
}

std::string CheckpointManager::save(const TrainingState& state, torch::nn::Module& net,
                                    torch::optim::Optimizer& optimizer) {
  const std::string iter = std::to_string(state.iter);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& kv : net.named_parameters()) named.emplace_back(kv.key(), kv.value());

  io::StateDict sd;
  for (const auto& [name, p] : named) sd.emplace_back("net." + name, p.detach().cpu().contiguous());
  for (const auto& kv : net.named_buffers())
    sd.emplace_back("net." + kv.key(), kv.value().detach().cpu().contiguous());
  nlohmann::json steps = nlohmann::json::object();
  const std::string opt_type = optimizer_type(optimizer);
  if (opt_type == "AdamW")
    export_state<torch::optim::AdamWParamState>(optimizer, named, sd, steps);
  else if (opt_type == "Adam")
    export_state<torch::optim::AdamParamState>(optimizer, named, sd, steps);
  else
    export_sgd(optimizer, named, sd, steps);
  sd.emplace_back("rng.cpu", cpu_rng_state());
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, i));
      std::lock_guard<std::mutex> lock(gen.mutex());
      sd.emplace_back("rng.cuda." + std::to_string(i), gen.get_state());
    }
  }

  // 1. Data files (each atomic), 2. the JSON commit marker naming their CRCs.
  const std::string state_rel = iter + ".state.pth";
  io::save_state_dict_file(states_dir() + "/" + state_rel, sd, "state");
  const std::string net_path = save_network(net, iter);

  nlohmann::json j;
  j["format"] = "samdeblur-training-state";
  j["version"] = kFormatVersion;
  j["iter"] = state.iter;
  j["epoch"] = state.epoch;
  j["loader"] = state.loader;
  j["best_psnr"] =
      std::isfinite(state.best_psnr) ? nlohmann::json(state.best_psnr) : nlohmann::json(nullptr);
  j["best_iter"] = state.best_iter;
  j["extra"] = state.extra;
  j["optimizer"] = {{"type", opt_type}, {"step", steps}};
  j["files"] = {{"state", file_entry(states_dir(), state_rel)},
                {"net", file_entry(models_dir(), "net_g_" + iter + ".pth")}};
  const std::string json_path = states_dir() + "/" + iter + ".state.json";
  write_file_atomic(json_path, j.dump(2) + "\n");
  (void)net_path;
  prune();
  return json_path;
}

void CheckpointManager::verify(const std::string& path) const {
  const std::string json_path = json_path_for(path);
  nlohmann::json j;
  try {
    const auto bytes = read_file_bytes(json_path);
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw FileError(json_path, std::string("not a valid checkpoint JSON: ") + e.what());
  }
  if (j.value("format", "") != "samdeblur-training-state")
    throw FileError(json_path, "not a samdeblur training state");
  if (j.value("version", 0) != kFormatVersion)
    throw FileError(json_path, fmt::format("format version {} (this build reads {})",
                                           j.value("version", 0), kFormatVersion));
  const std::string base = fs::path(json_path).parent_path().string();
  for (const auto& [label, dir] : {std::pair<std::string, std::string>{"state", base},
                                   {"net", (fs::path(base).parent_path() / "models").string()}}) {
    const auto& f = j.at("files").at(label);
    const std::string file = dir + "/" + f.at("path").get<std::string>();
    if (!fs::is_regular_file(file)) throw FileError(json_path, "missing file " + file);
    uint64_t size = 0;
    const uint32_t crc = file_crc(file, &size);
    if (size != f.at("size").get<uint64_t>() || crc != f.at("crc32c").get<uint32_t>())
      throw FileError(
          json_path,
          fmt::format("{} is corrupt (size {} vs {}, CRC-32C {:08x} vs {:08x})", file, size,
                      f.at("size").get<uint64_t>(), crc, f.at("crc32c").get<uint32_t>()));
  }
}

TrainingState CheckpointManager::load(const std::string& path, torch::nn::Module& net,
                                      torch::optim::Optimizer& optimizer,
                                      bool allow_nonfinite) const {
  const std::string expected_type = optimizer_type(optimizer);
  const std::string json_path = json_path_for(path);
  verify(json_path);
  const auto bytes = read_file_bytes(json_path);
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
  const std::string state_path =
      (fs::path(json_path).parent_path() / j["files"]["state"]["path"].get<std::string>()).string();
  const std::string opt_type = j["optimizer"]["type"];
  if (opt_type != expected_type)
    throw FileError(json_path, "checkpoint optimizer is " + opt_type + ", the config asks for " +
                                   expected_type);

  io::ReadOptions read;
  read.param_key = "state";
  read.allow_nonfinite = allow_nonfinite;
  const io::StateDict sd = io::load_state_dict_file(state_path, read);
  io::StateDict net_sd;
  std::map<std::string, torch::Tensor> rest;
  for (const auto& [k, v] : sd) {
    if (k.rfind("net.", 0) == 0)
      net_sd.emplace_back(k.substr(4), v);
    else
      rest[k] = v;
  }
  io::load_state_dict(net, net_sd, /*strict=*/true, state_path);
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& kv : net.named_parameters()) named.emplace_back(kv.key(), kv.value());
  const auto& steps = j["optimizer"]["step"];
  if (opt_type == "AdamW")
    import_state<torch::optim::AdamWParamState>(optimizer, named, rest, steps, state_path);
  else if (opt_type == "Adam")
    import_state<torch::optim::AdamParamState>(optimizer, named, rest, steps, state_path);
  else
    import_sgd(optimizer, named, rest, steps, state_path);
  if (rest.count("rng.cpu")) set_cpu_rng_state(rest["rng.cpu"]);
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      auto it = rest.find("rng.cuda." + std::to_string(i));
      if (it == rest.end()) continue;
      auto gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, i));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(it->second);
    }
  }
  TrainingState s;
  s.iter = j["iter"];
  s.epoch = j["epoch"];
  s.loader = j["loader"];
  s.best_psnr = j["best_psnr"].is_null() ? -std::numeric_limits<double>::infinity()
                                         : j["best_psnr"].get<double>();
  s.best_iter = j["best_iter"];
  s.extra = j["extra"];
  return s;
}

std::vector<std::string> CheckpointManager::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(states_dir(), ec)) return {};
  static const std::regex re(R"(^(\d+)\.state\.json$)");
  for (const auto& e : fs::directory_iterator(states_dir(), ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) found.emplace_back(std::stoll(m[1]), e.path().string());
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

std::string CheckpointManager::resolve_resume(const std::string& spec) const {
  if (spec.empty()) return "";
  if (spec != "auto") {
    verify(spec);
    return json_path_for(spec);
  }
  for (const auto& path : list()) {
    try {
      verify(path);
      return path;
    } catch (const Error& e) {
      log::warn(std::string("skipping invalid checkpoint: ") + e.what());
    }
  }
  return "";
}

void CheckpointManager::prune() const {
  const auto all = list();
  for (std::size_t i = static_cast<std::size_t>(keep_last_); i < all.size(); ++i) {
    const std::string json_path = all[i];
    const std::string stem = fs::path(json_path).filename().string();
    const std::string iter = stem.substr(0, stem.find('.'));
    std::error_code ec;
    fs::remove(json_path, ec);  // the commit marker first: a half-pruned set is invalid, not wrong
    fs::remove(states_dir() + "/" + iter + ".state.pth", ec);
    fs::remove(models_dir() + "/net_g_" + iter + ".pth", ec);
  }
}

}  // namespace samdeblur::train
