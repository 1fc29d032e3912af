// sdb-bench: CPU/GPU timings of the MAP unit (label-map vs dense), of the
// NAFNet-w32 forward pass (--precision, --memory-format, --ab), of the matrix
// product peak (--what peak) and of training iterations of NAFNet-w32 and
// SegNAFNet-w32 (--what train). Prints a table and writes JSON (--json FILE).
// The official Python figures come from scripts/bench_official.py. Thin wrapper
// over samdeblur::train (train/bench.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "samdeblur/core/app.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/blas.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/train/bench.h"

namespace tr = samdeblur::train;

namespace {

struct BenchArgs {
  std::string what = "inference", json_path, device = "cpu";
  std::string precision = "fp32", memory_format = "contiguous", fused = "auto";
  std::vector<int64_t> sizes = {256, 256, 720, 1280};
  int repeat = 5, threads = 0, warmup = 2;
  int64_t batch = 4, size = 256, num_masks = 30, peak_size = 2048;
  bool quiet = false, ab = false, profile = false;
};

void add_flags(CLI::App& app, BenchArgs& a) {
  app.add_option("--what", a.what,
                 "map | nafnet | peak | inference (map + nafnet + peak, the default) | train | "
                 "all")
      ->check(CLI::IsMember({"map", "nafnet", "peak", "inference", "train", "all"}));
  app.add_option("--precision", a.precision, "nafnet: fp32 (exact) or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--memory-format", a.memory_format,
                 "nafnet, train: contiguous (NCHW) or channels_last")
      ->check(CLI::IsMember({"contiguous", "channels_last"}));
  app.add_option("--fused", a.fused,
                 "nafnet, train: fused NAFBlock kernels (train: with their hand-written "
                 "backward): auto (with channels_last), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_flag("--profile", a.profile,
               "nafnet: then one profiled forward per execution, time per top-level operator");
  app.add_flag("--ab", a.ab,
               "nafnet, train: also time the exact path, interleaved run by run (iteration by "
               "iteration) on the same weights");
  app.add_option("--sizes", a.sizes, "nafnet: H W pairs, in order (default 256 256 720 1280)")
      ->expected(2, 64)
      ->check(CLI::Range(int64_t{1}, int64_t{16384}));
  app.add_option("--peak-size", a.peak_size, "peak: n of the n^3 matrix products")
      ->check(CLI::Range(int64_t{16}, int64_t{16384}));
  app.add_option("--repeat", a.repeat, "timed runs per case (median reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", a.warmup,
                 "train: untimed iterations first; nafnet: untimed runs per size (at most 1)")
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

// Prints and records a case; GFLOP/s and the share of the peak of its dtype
// measured earlier in this run (--what peak first, or `inference`).
class Reporter {
 public:
  explicit Reporter(nlohmann::json& results) : results_(results) {}
  void operator()(const tr::BenchResult& r) {
    const auto& t = r.timing;
    std::string extra;
    nlohmann::json j = {{"case", r.name},
                        {"ms", t.median_ms},
                        {"min_ms", t.min_ms},
                        {"runs", t.runs},
                        {"minor_faults_per_run", t.minor_faults}};
    if (t.first_ms > 0) {
      j["first_ms"] = t.first_ms;
      j["first_minor_faults"] = t.first_faults;
      extra += fmt::format(" first {:.2f} ms, {:.0f} faults;", t.first_ms, t.first_faults);
    }
    if (r.gflop > 0 && t.median_ms > 0) {
      const double gflops = r.gflop / (t.median_ms / 1000.0);
      j["gflop"] = r.gflop;
      j["gflops"] = gflops;
      extra += fmt::format(" {:>8.1f} GFLOP/s", gflops);
      if (r.name.rfind("matmul", 0) == 0) {
        peak_[r.dtype] = std::max(peak_[r.dtype], gflops);  // at::mm or the 1x1 conv
      } else if (peak_.count(r.dtype)) {
        j["share_of_peak"] = gflops / peak_[r.dtype];
        extra += fmt::format(" ({:.0f} % of peak)", 100.0 * gflops / peak_[r.dtype]);
      }
    }
    std::cout << fmt::format("{:<60} {:>10.2f} ms (min {:.2f}, {:.0f} faults/run){}", r.name,
                             t.median_ms, t.min_ms, t.minor_faults, extra)
              << std::endl;
    results_.push_back(j);
  }

 private:
  nlohmann::json& results_;
  std::map<torch::ScalarType, double> peak_;
};

tr::ForwardBenchOptions forward_options(const BenchArgs& a) {
  tr::ForwardBenchOptions o;
  o.repeat = a.repeat;
  o.warmup = std::min(a.warmup, 1);
  o.sizes.clear();
  if (a.sizes.size() % 2 != 0) throw samdeblur::Error("--sizes takes H W pairs");
  for (size_t i = 0; i + 1 < a.sizes.size(); i += 2)
    o.sizes.push_back({a.sizes[i], a.sizes[i + 1]});
  o.execution = samdeblur::models::parse_execution(a.precision, a.memory_format, "sdb-bench");
  if (a.fused != "auto") o.execution.fused = a.fused == "on";
  o.ab = a.ab;
  o.profile = a.profile;
  return o;
}

// --what train: train::TrainOptions::execution() for --memory-format, --fused.
tr::TrainBenchOptions train_options(const BenchArgs& a) {
  if (a.precision != "fp32")
    throw samdeblur::Error("--what train: --precision bf16 is inference only");
  tr::TrainBenchOptions o;
  o.batch = a.batch;
  o.size = a.size;
  o.num_masks = a.num_masks;
  o.warmup = a.warmup;
  o.repeat = a.repeat;
  o.execution = samdeblur::models::parse_execution("fp32", a.memory_format, "sdb-bench");
  if (a.fused != "auto") o.execution.fused = a.fused == "on";
  o.ab = a.ab;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-bench: MAP unit, NAFNet forward and training-iteration timings"};
  BenchArgs a;
  add_flags(app, a);
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;
  samdeblur::apply_quiet(a.quiet);
  return samdeblur::run_guarded([&]() -> int {
    samdeblur::set_cpu_threads(a.threads);
    const torch::Device device = samdeblur::parse_device(a.device);
    torch::manual_seed(0);
    nlohmann::json results = nlohmann::json::array();
    Reporter report(results);
    std::cout << fmt::format("LibTorch {}, {} threads, device {}, BLAS {}\n", TORCH_VERSION,
                             torch::get_num_threads(), a.device, samdeblur::blas_description());
    const bool all = a.what == "all", inference = a.what == "inference" || all;
    // Each case family starts from the same heap in its own process when run
    // alone (scripts/bench_nafnet.sh); `inference` runs them in one process.
    if (a.what == "map" || inference) tr::bench_map_unit(device, a.repeat, report);
    if (a.what == "peak" || inference) tr::bench_matmul_peak(device, a.peak_size, 3, report);
    if (a.what == "nafnet" || inference)
      tr::bench_nafnet_forward(device, forward_options(a), report);
    if (a.what == "train" || all)
      for (const std::string type : {"NAFNet", "SegNAFNet"})
        tr::bench_train(type, train_options(a), device, report);
    if (!a.json_path.empty()) samdeblur::write_file_atomic(a.json_path, results.dump(2) + "\n");
    return 0;
  });
}
