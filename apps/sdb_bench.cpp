// sdb-bench: CPU/GPU timings of the MAP unit (label-map vs dense) and of the
// NAFNet-w32 forward pass. Prints a table and writes JSON (--json FILE).
// The official Python figures come from scripts/bench_official.py.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/log.h"
#include "samdeblur/models/map_unit.h"
#include "samdeblur/models/network.h"

namespace {

using Clock = std::chrono::steady_clock;

// Median wall time (ms) of `repeat` runs after one warm-up run.
double time_ms(const std::function<void()>& fn, int repeat, const torch::Device& device) {
  fn();
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    fn();
    if (device.is_cuda()) torch::cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A partition of (h, w) into about `m` rectangular cells, labels 0..m-1.
torch::Tensor grid_labels(int64_t h, int64_t w, int64_t m) {
  const int64_t rows = std::max<int64_t>(1, static_cast<int64_t>(std::sqrt(static_cast<double>(m) * h / w)));
  const int64_t cols = (m + rows - 1) / rows;
  auto y = (torch::arange(h) * rows / h).unsqueeze(1);
  auto x = (torch::arange(w) * cols / w).unsqueeze(0);
  return (y * cols + x).clamp_max(m - 1).to(torch::kLong);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-bench: MAP unit and NAFNet timings"};
  std::string what = "all", json_path, device_text = "cpu";
  int repeat = 5, threads = 0;
  app.add_option("--what", what, "map | nafnet | all");
  app.add_option("--repeat", repeat, "timed runs per case (median reported)");
  app.add_option("--threads", threads, "intra-op threads (default: torch's choice)");
  app.add_option("--device", device_text, "cpu or cuda[:N]");
  app.add_option("--json", json_path, "also write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  samdeblur::log::setup_logging(samdeblur::log::Level::info);
  if (threads > 0) torch::set_num_threads(threads);
  const torch::Device device(device_text);
  c10::InferenceMode guard;
  torch::manual_seed(0);
  nlohmann::json results = nlohmann::json::array();
  auto report = [&](const std::string& name, double ms) {
    std::cout << fmt::format("{:<44} {:>10.2f} ms", name, ms) << std::endl;
    results.push_back({{"case", name}, {"ms", ms}});
  };
  std::cout << fmt::format("LibTorch {}, {} threads, device {}\n", TORCH_VERSION, torch::get_num_threads(),
                           device_text);
  try {
    if (what == "map" || what == "all") {
      struct Case { int64_t h, w, m; };
      for (const Case c : {Case{256, 256, 64}, Case{720, 1280, 300}}) {
        const int64_t channels = 2;  // seg_channel of the official SegNAFNet configs
        const auto feats = torch::randn({channels, c.h, c.w}, torch::TensorOptions().device(device));
        const auto labels = grid_labels(c.h, c.w, c.m).to(device);
        const double value = 1.0 / 255.0;
        report(fmt::format("MAP label-map {}x{} M={} C={}", c.w, c.h, c.m, channels),
               time_ms([&] { samdeblur::models::mask_average_labels(feats, labels, c.m, value); }, repeat, device));
        const auto dense = torch::nn::functional::one_hot(labels, c.m).permute({2, 0, 1}).unsqueeze(1).to(torch::kFloat);
        report(fmt::format("MAP dense     {}x{} M={} C={}", c.w, c.h, c.m, channels),
               time_ms([&] { samdeblur::models::mask_average_dense(feats, dense, value); }, std::max(1, repeat / 2), device));
      }
    }
    if (what == "nafnet" || what == "all") {
      samdeblur::models::NetworkOptions o;
      o.type = "NAFNet";
      o.width = 32;
      o.enc_blk_nums = {1, 1, 1, 28};
      o.middle_blk_num = 1;
      o.dec_blk_nums = {1, 1, 1, 1};
      auto net = samdeblur::models::build_network(o);
      net->to(device);
      net->eval();
      for (auto [h, w] : {std::pair<int64_t, int64_t>{256, 256}, {720, 1280}}) {
        const auto x = torch::rand({1, 3, h, w}, torch::TensorOptions().device(device));
        report(fmt::format("NAFNet-w32 forward {}x{}", w, h),
               time_ms([&] { net->forward(x); }, h > 256 ? std::max(1, repeat / 2) : repeat, device));
      }
    }
  } catch (const std::exception& e) {
    samdeblur::log::error(e.what());
    return 1;
  }
  if (!json_path.empty()) samdeblur::write_file_atomic(json_path, results.dump(2) + "\n");
  return 0;
}
