#pragma once
// Training checkpoints that survive crashes (issue #4).
//
// Layout under <experiment>/ (mirrors BasicSR's experiments/<name>/):
//   models/net_g_<iter>.pth          BasicSR {'params': state_dict}: torch.load / sdb-eval
//   models/net_g_latest.pth, net_g_best.pth
//   training_states/<iter>.state.pth tensors, namespaced:
//       net.<param>                  weights (same as net_g_<iter>.pth)
//       optim.exp_avg.<param>, optim.exp_avg_sq.<param>[, optim.max_exp_avg_sq.<param>]
//       rng.cpu[, rng.cuda.<i>]      torch generator states (uint8)
//   training_states/<iter>.state.json  commit marker, written last: iteration,
//       epoch, loader position, per-parameter optimizer step, best PSNR, and the
//       size and CRC-32C of both .pth files.
// Every file is written with write_file_atomic (temp, fsync, rename). A
// checkpoint is valid only when its JSON parses and both .pth files match
// their recorded size and CRC, so a crash at any point leaves either the
// previous checkpoint set or the new one. The newest `keep_last` sets are kept.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace samdeblur::train {

struct TrainingState {
  int64_t iter = 0;  // iterations completed
  int64_t epoch = 0;
  nlohmann::json loader = nlohmann::json::object();  // {epoch, position, seed}
  double best_psnr = -std::numeric_limits<double>::infinity();
  int64_t best_iter = 0;
  nlohmann::json extra = nlohmann::json::object();  // e.g. fp16 loss scale, config name
};

class CheckpointManager {
 public:
  CheckpointManager(std::string experiment_dir, int64_t keep_last = 3,
                    std::string param_key = "params");

  // Saves a full checkpoint at state.iter and prunes old ones. `optimizer`
  // must be torch::optim::AdamW, Adam or SGD over net.parameters().
  // Returns the JSON path.
  std::string save(const TrainingState& state, torch::nn::Module& net,
                   torch::optim::Optimizer& optimizer);
  // Restores net, optimizer and the torch RNGs from a checkpoint JSON path (or
  // the .state.pth next to it); throws FileError when it is invalid. A state
  // holding NaN / Inf (weights or optimizer moments) is refused with the count of
  // non-finite values per tensor (io::ReadOptions::allow_nonfinite, as sdb-eval
  // checks weights) unless allow_nonfinite (sdb-train --allow-nonfinite): then it
  // loads with that list as a warning.
  TrainingState load(const std::string& path, torch::nn::Module& net,
                     torch::optim::Optimizer& optimizer, bool allow_nonfinite = false) const;
  // Checks sizes and CRCs without loading; throws FileError explaining why not.
  void verify(const std::string& json_path) const;

  // Writes models/net_g_<label>.pth (label: best, latest or an iteration).
  std::string save_network(torch::nn::Module& net, const std::string& label) const;

  // Checkpoint JSONs, newest iteration first.
  std::vector<std::string> list() const;
  // "auto": newest valid checkpoint (corrupt ones skipped with a warning), ""
  // when there is none. Otherwise the given path, verified.
  std::string resolve_resume(const std::string& spec) const;

  const std::string& dir() const { return dir_; }
  std::string models_dir() const { return dir_ + "/models"; }
  std::string states_dir() const { return dir_ + "/training_states"; }

 private:
  void prune() const;
  std::string dir_;
  int64_t keep_last_;
  std::string param_key_;
};

// Bytes of the torch CPU generator state / restore it (exposed for tests).
torch::Tensor cpu_rng_state();
void set_cpu_rng_state(const torch::Tensor& state);

}  // namespace samdeblur::train
