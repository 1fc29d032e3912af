// sdb-sam-bench: CPU/GPU timings of Segment Anything (issue #3): the image encoder alone at
// 1024x1024, and the whole automatic mask generator on one image split by stage (encoder /
// decoder / post-processing, as MaskGenerator measures them). Prints a table and writes JSON
// (--json FILE). The official Python figures come from scripts/bench_sam_official.py, which
// runs the same cases with the same options.
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/app.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/io/image.h"
#include "samdeblur/sam/mask_generator.h"
#include "samdeblur/sam/sam_model.h"

namespace sam = samdeblur::sam;
namespace slog = samdeblur::log;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Process CPU time (all threads), seconds: with --threads 1 a load-independent proxy of the
// compute time on a shared machine, reported beside the wall time.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-sam-bench: Segment Anything encoder and automatic mask generator timings"};
  std::string checkpoint, image_path, what = "all", json_path, device_text = "cpu";
  int repeat = 3, warmup = 1, threads = 0;
  bool bgr = false;
  sam::MaskGeneratorOptions g;
  app.add_option("--checkpoint", checkpoint, "vit_b/l/h checkpoint (state_dict .pth)")->required();
  app.add_option("--image", image_path, "photo for the mask generator (read as RGB)");
  app.add_option("--what", what, "encoder | amg | all")
      ->check(CLI::IsMember({"encoder", "amg", "all"}));
  app.add_option("--repeat", repeat, "timed runs per case (median reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", warmup, "untimed runs before each case")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--threads", threads, "intra-op threads (default 0: torch's choice)")
      ->check(CLI::Range(0, 4096));
  app.add_option("-d,--device", device_text, "cpu or cuda[:N]");
  app.add_flag("--bgr", bgr, "give SAM the BGR image, as the official SAM-Deblur script does");
  samdeblur::cli::add_field_flags(app, g, "", {}, "Generator");
  app.add_option("--json", json_path, "also write the results as JSON");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;
  slog::setup_logging(slog::Level::info);
  return samdeblur::run_guarded([&]() -> int {
    if (threads > 0) torch::set_num_threads(threads);
    const torch::Device device(device_text);
    nlohmann::json results = {{"libtorch", TORCH_VERSION},
                              {"threads", torch::get_num_threads()},
                              {"device", device_text},
                              {"checkpoint", checkpoint},
                              {"cases", nlohmann::json::array()}};
    std::cout << fmt::format("LibTorch {}, {} intra-op threads, device {}\n", TORCH_VERSION,
                             torch::get_num_threads(), device_text);

    if (what == "encoder" || what == "all") {
      sam::SamConfig cfg;
      cfg.model_type = "auto";
      auto model = sam::make_sam(cfg, checkpoint, device);
      c10::InferenceMode guard;
      torch::manual_seed(0);
      const int64_t s = model->config.image_size;
      const auto x = torch::randn({1, 3, s, s}, torch::TensorOptions().device(device));
      std::vector<double> secs, cpu;
      for (int i = 0; i < warmup + repeat; ++i) {
        const auto t0 = Clock::now();
        const double c0 = cpu_seconds();
        model->image_encoder->forward(x);
        sync(device);
        if (i < warmup) continue;
        secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        cpu.push_back(cpu_seconds() - c0);
      }
      const std::string name =
          fmt::format("{} image encoder {}x{}", model->config.model_type, s, s);
      std::cout << fmt::format("{:<40} {:>9.3f} s wall, {:.3f} s CPU (median of {})\n", name,
                               median(secs), median(cpu), repeat);
      results["cases"].push_back({{"case", "encoder"},
                                  {"name", name},
                                  {"seconds", median(secs)},
                                  {"cpu_seconds", median(cpu)},
                                  {"runs", secs},
                                  {"runs_cpu", cpu}});
    }

    if (what == "amg" || what == "all") {
      if (image_path.empty()) throw samdeblur::ConfigError("--image is required for --what amg");
      cv::Mat image = samdeblur::io::read_image_bgr(image_path);
      if (!bgr) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
      sam::SamConfig cfg;
      cfg.model_type = "auto";
      auto predictor = sam::make_predictor(cfg, checkpoint, device);
      sam::MaskGenerator generator(*predictor, g);
      std::vector<double> enc, dec, post, total, cpu;
      size_t n_masks = 0;
      int64_t n_points = 0;
      std::vector<int64_t> areas;  // per record, generator order: compared with the official
      for (int i = 0; i < warmup + repeat; ++i) {
        const auto t0 = Clock::now();
        const double c0 = cpu_seconds();
        const auto r = generator.generate(image);
        const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        const double cpu_s = cpu_seconds() - c0;
        n_masks = r.masks.size();
        n_points = r.points;
        areas.clear();
        for (const auto& m : r.masks) areas.push_back(m.area);
        if (i < warmup) continue;
        enc.push_back(r.times.encoder);
        dec.push_back(r.times.decoder);
        post.push_back(r.times.post);
        total.push_back(wall);
        cpu.push_back(cpu_s);
      }
      const std::string name =
          fmt::format("{} mask generator {}x{} ({} prompts, {} masks)",
                      predictor->config().model_type, image.cols, image.rows, n_points, n_masks);
      std::cout << name << "\n";
      for (const auto& [stage, v] :
           {std::pair<const char*, const std::vector<double>&>{"encoder", enc},
            {"decoder", dec},
            {"post-processing", post},
            {"total", total},
            {"total CPU time", cpu}})
        std::cout << fmt::format("  {:<38} {:>9.3f} s (median of {})\n", stage, median(v), repeat);
      results["cases"].push_back({{"case", "amg"},
                                  {"name", name},
                                  {"image", image_path},
                                  {"width", image.cols},
                                  {"height", image.rows},
                                  {"rgb", !bgr},
                                  {"output_mode", sam::output_mode_name(g.output_mode)},
                                  {"points_per_side", *g.points_per_side},
                                  {"points_per_batch", g.points_per_batch},
                                  {"pred_iou_thresh", g.pred_iou_thresh},
                                  {"stability_score_thresh", g.stability_score_thresh},
                                  {"box_nms_thresh", g.box_nms_thresh},
                                  {"min_mask_region_area", g.min_mask_region_area},
                                  {"prompts", n_points},
                                  {"masks", n_masks},
                                  {"encoder_s", median(enc)},
                                  {"decoder_s", median(dec)},
                                  {"post_s", median(post)},
                                  {"total_s", median(total)},
                                  {"cpu_total_s", median(cpu)},
                                  {"areas", areas},
                                  {"runs_total_s", total},
                                  {"runs_cpu_total_s", cpu}});
    }
    if (!json_path.empty()) samdeblur::write_file_atomic(json_path, results.dump(2) + "\n");
    return 0;
  });
}
