// sdb-sweep: evaluate a grid of variants x datasets (a sweep file), resumable,
// then write the paper's table (table.md / .csv / .json) and report.html.
// Thin wrapper over samdeblur::sweep.
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "samdeblur/core/app.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/sweep/runner.h"
#include "samdeblur/sweep/sweep_config.h"

int main(int argc, char** argv) {
  CLI::App app{"sdb-sweep: evaluate variants x datasets, write the table and report.html"};
  std::string config_path, output_dir, device = "cpu";
  bool quiet = false;
  int threads = 0;
  app.add_option("-c,--config", config_path, "sweep file (name, variants, datasets, reference)")
      ->required();
  app.add_option("-o,--output", output_dir, "output folder (default results/<name>)");
  app.add_option("-d,--device", device, "cpu, cuda or cuda:N");
  app.add_option("--threads", threads, "intra-op CPU threads (default: torch's choice)")
      ->check(CLI::Range(0, 1024));
  app.add_flag("-q,--quiet", quiet, "print only the output paths and errors");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  namespace log = samdeblur::log;
  log::setup_logging(log::Level::info);
  if (quiet) log::set_console_level(log::Level::warn);
  samdeblur::ProgressBar::set_enabled(!quiet);
  return samdeblur::run_guarded([&]() -> int {
    samdeblur::set_cpu_threads(threads);
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    log::info("command: " + cmdline);
    log::info(
        fmt::format("LibTorch {}, {} intra-op threads", TORCH_VERSION, torch::get_num_threads()));
    const auto sweep = samdeblur::sweep::load_sweep_config(config_path);
    samdeblur::sweep::SweepOptions options;
    options.output_dir = output_dir;
    options.device = device;
    options.progress = !quiet;
    const auto run = samdeblur::sweep::run_sweep(sweep, options);
    std::cout << fmt::format("{} cells: {} evaluated, {} up to date", run.cells.size(),
                             run.computed, run.skipped)
              << "\ntable: " << run.output_dir << "/table.md\nreport: " << run.output_dir
              << "/report.html" << std::endl;
    return 0;
  });
}
