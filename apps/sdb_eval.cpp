// sdb-eval: evaluate a deblurring model on benchmark folders from an official
// SAM-Deblur test config. Thin wrapper over samdeblur::eval.
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "samdeblur/core/app.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/eval/config.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/eval/input_check.h"

namespace slog = samdeblur::log;

int main(int argc, char** argv) {
  CLI::App app{"sdb-eval: evaluate SAM-Deblur / NAFNet models (PSNR, SSIM, MCR)"};
  std::string config_path, output_dir, device = "cpu";
  std::vector<std::string> overrides;
  bool quiet = false;
  int threads = 0;
  app.add_option("-c,--config", config_path, "test config (official SAM-Deblur YAML schema)")
      ->required();
  app.add_option("-o,--output", output_dir, "output folder (default results/<name>)");
  app.add_option("-d,--device", device, "cpu, cuda or cuda:N");
  app.add_option("--set", overrides, "override a config key: key.path=value (repeatable)");
  app.add_option("--threads", threads, "intra-op CPU threads (default: torch's choice)")
      ->check(CLI::Range(0, 1024));
  app.add_flag("-q,--quiet", quiet, "print only the result lines and errors");
  std::string precision, memory_format;
  app.add_option("--precision", precision, "fp32 (exact, default) or bf16: sets val.precision")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--memory-format", memory_format,
                 "auto (default: channels_last on the CPU, contiguous on CUDA), contiguous (the "
                 "exact ATen composition) or channels_last (+ fused kernels, within fp32 "
                 "rounding): sets val.memory_format")
      ->check(CLI::IsMember({"auto", "contiguous", "channels_last"}));
  bool allow_nonfinite = false;
  app.add_flag("--allow-nonfinite", allow_nonfinite,
               "load a checkpoint holding NaN/Inf weights (with a warning) instead of refusing it");
  bool check_only = false;
  app.add_flag("--check", check_only,
               "validate the config and every input file, list the datasets, then exit");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  samdeblur::apply_quiet(quiet);
  return samdeblur::run_guarded([&]() -> int {
    samdeblur::set_cpu_threads(threads);
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    slog::info(
        fmt::format("LibTorch {}, {} intra-op threads", TORCH_VERSION, torch::get_num_threads()));
    if (!precision.empty()) overrides.push_back("val.precision=" + precision);
    if (!memory_format.empty()) overrides.push_back("val.memory_format=" + memory_format);
    const auto cfg = samdeblur::eval::load_eval_config(config_path, overrides);
    if (check_only) {
      samdeblur::eval::check_inputs(cfg.datasets);  // every damaged file named, exit 1
      for (const auto& ds : cfg.datasets) {
        std::string masks;
        if (ds.needs_masks())
          masks = ds.mask_source.on_the_fly() ? ", masks on the fly (" + ds.mask_source.type + ")"
                                              : ", masks from " + ds.dataroot_mask;
        std::cout << fmt::format("{}: {} ({}): {} samples{}", cfg.source, ds.name, ds.type,
                                 samdeblur::dataset::list_samples(ds).size(), masks)
                  << std::endl;
      }
      return 0;
    }
    samdeblur::eval::RunOptions run;
    run.output_dir = output_dir;
    run.device = device;
    run.progress = !quiet;
    run.allow_nonfinite = allow_nonfinite;
    const auto result = samdeblur::eval::run_evaluation(cfg, run);
    for (const auto& d : result.datasets) {
      std::string line = fmt::format("{} | {} images", d.name, d.images.size());
      for (std::size_t k = 0; k < d.metric_names.size(); ++k)
        line += fmt::format(" | {} {:.4f}", d.metric_names[k], d.means[k]);
      line += fmt::format(" | MCR {:.2f}% | input PSNR {:.4f}", 100.0 * d.mcr, d.mean_psnr_input);
      std::cout << line << std::endl;
    }
    slog::info("results written to " + result.output_dir);
    return 0;
  });
}
