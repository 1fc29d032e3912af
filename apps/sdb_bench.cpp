// sdb-bench: CPU/GPU timings of the MAP unit (label-map vs dense), of the
// NAFNet-w32 forward pass and of training iterations of NAFNet-w32 and
// SegNAFNet-w32 (--what train). Prints a table and writes JSON (--json FILE).
// The official Python figures come from scripts/bench_official.py. Thin wrapper
// over samdeblur::train (train/bench.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "samdeblur/core/app.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/device.h"
#include "samdeblur/train/bench.h"

namespace tr = samdeblur::train;

namespace {

struct BenchArgs {
  std::string what = "inference", json_path, device = "cpu";
  int repeat = 5, threads = 0, warmup = 2;
  int64_t batch = 4, size = 256, num_masks = 30;
  bool quiet = false;
};

void add_flags(CLI::App& app, BenchArgs& a) {
  app.add_option("--what", a.what,
                 "map | nafnet | inference (map + nafnet, the default) | train | all")
      ->check(CLI::IsMember({"map", "nafnet", "inference", "train", "all"}));
  app.add_option("--repeat", a.repeat, "timed runs per case (median reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", a.warmup, "train: untimed iterations first")
      ->check(CLI::Range(0, 100000));
  app.add_option("--batch", a.batch, "train: batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--size", a.size, "train: crop size (gt_size)")
      ->check(CLI::Range(int64_t{16}, int64_t{16384}));
  app.add_option("--masks", a.num_masks, "train: masks per image (SegNAFNet)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--threads", a.threads, "intra-op threads (default: torch's choice)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--device", a.device, "cpu or cuda[:N]");
  app.add_option("--json", a.json_path, "also write the results as JSON");
  app.add_flag("-q,--quiet", a.quiet, "log warnings and errors only");
}

// The training-iteration cases: one table row and one JSON entry per model type.
void bench_training(const BenchArgs& a, const torch::Device& device, nlohmann::json& results) {
  for (const std::string type : {"NAFNet", "SegNAFNet"}) {
    const double s =
        tr::train_seconds(type, a.batch, a.size, a.num_masks, a.warmup, a.repeat, device);
    const std::string name =
        fmt::format("{}-w32 train B{} {}x{}{}", type, a.batch, a.size, a.size,
                    type == "SegNAFNet" ? fmt::format(" M={}", a.num_masks) : "");
    std::cout << fmt::format("{:<44} {:>10.2f} ms {:>8.3f} it/s", name, s * 1000, 1.0 / s)
              << std::endl;
    results.push_back({{"case", name},
                       {"ms", s * 1000},
                       {"s_per_iter", s},
                       {"it_per_s", 1.0 / s},
                       {"batch", a.batch},
                       {"size", a.size},
                       {"warmup", a.warmup},
                       {"repeat", a.repeat}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-bench: MAP unit, NAFNet forward and training-iteration timings"};
  BenchArgs a;
  add_flags(app, a);
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;
  samdeblur::apply_quiet(a.quiet);
  return samdeblur::run_guarded([&]() -> int {
    if (a.threads > 0) torch::set_num_threads(a.threads);
    const torch::Device device = samdeblur::parse_device(a.device);
    torch::manual_seed(0);
    nlohmann::json results = nlohmann::json::array();
    auto report = [&](const std::string& name, double ms) {
      std::cout << fmt::format("{:<44} {:>10.2f} ms", name, ms) << std::endl;
      results.push_back({{"case", name}, {"ms", ms}});
    };
    std::cout << fmt::format("LibTorch {}, {} threads, device {}\n", TORCH_VERSION,
                             torch::get_num_threads(), a.device);
    const bool all = a.what == "all", inference = a.what == "inference" || all;
    if (a.what == "map" || inference) tr::bench_map_unit(device, a.repeat, report);
    if (a.what == "nafnet" || inference) tr::bench_nafnet_forward(device, a.repeat, report);
    if (a.what == "train" || all) bench_training(a, device, results);
    if (!a.json_path.empty()) samdeblur::write_file_atomic(a.json_path, results.dump(2) + "\n");
    return 0;
  });
}
