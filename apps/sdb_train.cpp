// sdb-train: train SAM-Deblur / NAFNet models from an official SAM-Deblur
// training config (options/train/GoPro/*.yml). Thin wrapper over samdeblur::train.
//
// Exit codes: 0 finished (or --check passed); 1 error (config, data, I/O);
// 2 command-line error; 3 stopped on a non-finite loss; 130 / 143 interrupted
// by SIGINT / SIGTERM after writing a checkpoint (resume with --resume auto).
// With --nproc-per-node N the launcher returns the first failing worker's code.
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "samdeblur/core/app.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/train/distributed.h"
#include "samdeblur/train/train_config.h"
#include "samdeblur/train/trainer.h"

namespace slog = samdeblur::log;
namespace tr = samdeblur::train;

namespace {

// The command line without --nproc-per-node: what each local worker runs.
std::vector<std::string> worker_args(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc-per-node") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0) continue;
    args.push_back(a);
  }
  return args;
}

// The run's first log lines: command, versions, rank, seed, unused official keys.
void log_start(int argc, char** argv, const tr::TrainConfig& cfg, const tr::DistEnv& env) {
  std::string cmdline;
  for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
  slog::info("command: " + cmdline);
  slog::info(fmt::format("LibTorch {}, {} intra-op threads, rank {}/{}, seed {}", TORCH_VERSION,
                         torch::get_num_threads(), env.rank, env.world_size, cfg.manual_seed));
  if (!cfg.ignored_keys.empty()) {
    std::string keys;
    for (const auto& k : cfg.ignored_keys) keys += (keys.empty() ? "" : ", ") + k;
    slog::info("official keys not used by sdb-train: " + keys);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-train: train SAM-Deblur / NAFNet models (official training YAML schema)"};
  std::string config_path, resume, device = "cpu";
  std::vector<std::string> overrides;
  int64_t nproc = 0;
  int threads = 0;
  bool quiet = false, check_only = false;
  app.add_option("-c,--config", config_path, "training config (official SAM-Deblur YAML schema)")
      ->required();
  app.add_option("--set", overrides, "override a config key: key.path=value (repeatable)");
  app.add_option("--resume", resume,
                 "checkpoint (.state.json) to resume, or 'auto' for the newest valid one");
  app.add_option("-d,--device", device,
                 "cpu, cuda or cuda:N (multi-process CUDA: cuda:LOCAL_RANK)");
  app.add_option("--nproc-per-node", nproc, "start N local worker processes (torchrun style)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  app.add_option("--threads", threads, "intra-op CPU threads per process (default: torch's choice)")
      ->check(CLI::Range(0, 1024));
  app.add_flag("-q,--quiet", quiet, "no progress bar; the console shows warnings and errors only");
  bool allow_nonfinite = false;
  app.add_flag("--allow-nonfinite", allow_nonfinite,
               "load a pretrained or --resume checkpoint holding NaN/Inf values (with a warning)");
  app.add_flag("--check", check_only, "validate the config and the dataset folders, then exit");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  samdeblur::apply_quiet(quiet);
  return samdeblur::run_guarded([&]() -> int {
    if (nproc > 1) {
      // Validate once in the launcher so a bad config fails before any fork.
      const auto cfg = tr::load_train_config(config_path, overrides);
      tr::check_data(cfg);
      return tr::launch_local_workers(nproc, worker_args(argc, argv));
    }
    samdeblur::set_cpu_threads(threads);
    const auto cfg = tr::load_train_config(config_path, overrides);
    tr::check_data(cfg);
    if (check_only) {
      std::cout << fmt::format("{}: config OK ({}; train: {}; {} validation set(s))", cfg.source,
                               cfg.network_g.type, cfg.train_set.base.dataroot_lq,
                               cfg.val_datasets.size())
                << std::endl;
      return 0;
    }
    const auto env = tr::DistEnv::from_environment(cfg.dist_port);
    if (env.rank != 0) slog::setup_logging(slog::Level::warn);
    tr::install_stop_handlers();
    tr::Communicator comm(env, cfg.dist_backend);
    tr::TrainerOptions opt;
    opt.resume = resume;
    opt.device = device;
    opt.progress = !quiet;
    opt.allow_nonfinite = allow_nonfinite;
    tr::Trainer trainer(cfg, opt, &comm);
    const std::string log_file = trainer.prepare();
    if (!log_file.empty()) slog::setup_logging(slog::Level::info, log_file);
    log_start(argc, argv, cfg, env);
    const auto result = trainer.run();
    return tr::exit_code_for(result);
  });
}
