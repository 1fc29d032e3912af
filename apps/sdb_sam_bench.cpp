// sdb-sam-bench: CPU/GPU timings of Segment Anything (issue #3): the image encoder alone at
// 1024x1024, and the whole automatic mask generator on one image split by stage (encoder /
// decoder / post-processing, as MaskGenerator measures them). Prints a table and writes JSON
// (--json FILE). The official Python figures come from scripts/bench_sam_official.py, which
// runs the same cases with the same options. Thin wrapper over samdeblur::sam (sam/bench.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/app.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/blas.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/io/image.h"
#include "samdeblur/sam/bench.h"

namespace sam = samdeblur::sam;
namespace slog = samdeblur::log;

namespace {

void print_encoder(const nlohmann::json& c, int repeat) {
  std::cout << fmt::format("{:<40} {:>9.3f} s wall, {:.3f} s CPU (median of {})\n",
                           c["name"].get<std::string>(), c["seconds"].get<double>(),
                           c["cpu_seconds"].get<double>(), repeat);
}

void print_generator(const nlohmann::json& c, int repeat) {
  std::cout << c["name"].get<std::string>() << "\n";
  for (const auto& [stage, key] : {std::pair<const char*, const char*>{"encoder", "encoder_s"},
                                   {"decoder", "decoder_s"},
                                   {"post-processing", "post_s"},
                                   {"total", "total_s"},
                                   {"total CPU time", "cpu_total_s"}})
    std::cout << fmt::format("  {:<38} {:>9.3f} s (median of {})\n", stage, c[key].get<double>(),
                             repeat);
}

// The top operators of a --profile run (the JSON has all of them).
void print_profile(const nlohmann::json& c, const std::string& what) {
  if (!c.contains("profile")) return;
  double total = 0;
  for (const auto& op : c["profile"])  // top-level entries ("scope > op" are inside scopes)
    if (op["op"].get<std::string>().find(" > ") == std::string::npos)
      total += op["ms"].get<double>();
  std::cout << fmt::format("  profile of {}: {:.1f} ms in top-level operators\n", what, total);
  int shown = 0;
  for (const auto& op : c["profile"]) {
    if (++shown > 20) break;
    std::cout << fmt::format("    {:<52} {:>9.1f} ms {:>5.1f} % ({} calls)\n",
                             op["op"].get<std::string>(), op["ms"].get<double>(),
                             100.0 * op["ms"].get<double>() / std::max(total, 1e-9),
                             op["calls"].get<int>());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-sam-bench: Segment Anything encoder and automatic mask generator timings"};
  std::string image_path, what = "all", json_path, device_text = "cpu";
  int threads = 0;
  bool bgr = false, quiet = false;
  sam::SamBenchOptions bench;
  sam::MaskGeneratorOptions g;
  std::string precision = "fp32";
  app.add_option("--checkpoint", bench.checkpoint,
                 "vit_b/l/h checkpoint (state_dict .pth); without it, seeded random weights of "
                 "--random-model-type (direction-finding only)");
  app.add_option("--random-model-type", bench.random_model_type,
                 "official type for random weights when no --checkpoint is given")
      ->capture_default_str()
      ->check(CLI::IsMember({"vit_b", "vit_l", "vit_h"}));
  app.add_option("--precision", precision,
                 "SAM compute precision: fp32 (default, exact) or bf16 (CUDA, or a CPU with "
                 "AVX512-BF16 / AMX-BF16)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--image", image_path, "photo for the mask generator (read as RGB)");
  app.add_option("--what", what, "encoder | amg | all")
      ->check(CLI::IsMember({"encoder", "amg", "all"}));
  app.add_option("--repeat", bench.repeat, "timed runs per case (median reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", bench.warmup, "untimed runs before each case")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--threads", threads, "intra-op threads (default 0: torch's choice)")
      ->check(CLI::Range(0, 4096));
  app.add_option("-d,--device", device_text, "cpu or cuda[:N]");
  app.add_flag("--bgr", bgr, "give SAM the BGR image, as the official SAM-Deblur script does");
  samdeblur::cli::add_field_flags(app, g, "", {}, "Generator");
  app.add_flag("--profile", bench.profile,
               "then one profiled run per case (encoder forward; one decoder batch of the "
               "generator): CPU time per top-level operator, in the table and the JSON");
  app.add_option("--json", json_path, "also write the results as JSON");
  app.add_flag("-q,--quiet", quiet, "log warnings and errors only");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;
  samdeblur::apply_quiet(quiet);
  return samdeblur::run_guarded([&]() -> int {
    samdeblur::set_cpu_threads(threads);
    bench.device = torch::Device(device_text);
    bench.precision = sam::precision_from_name(precision, "--precision");
    nlohmann::json results = {
        {"libtorch", TORCH_VERSION},
        {"threads", torch::get_num_threads()},
        {"blas", samdeblur::blas_description()},
        {"device", device_text},
        {"checkpoint",
         bench.checkpoint.empty() ? "random " + bench.random_model_type : bench.checkpoint},
        {"precision", precision},
        {"cases", nlohmann::json::array()}};
    std::cout << fmt::format("LibTorch {}, {} intra-op threads, device {}, BLAS {}\n",
                             TORCH_VERSION, torch::get_num_threads(), device_text,
                             samdeblur::blas_description());
    if (what == "encoder" || what == "all") {
      results["cases"].push_back(sam::bench_image_encoder(bench));
      print_encoder(results["cases"].back(), bench.repeat);
      print_profile(results["cases"].back(), "the encoder forward");
    }
    if (what == "amg" || what == "all") {
      if (image_path.empty()) throw samdeblur::ConfigError("--image is required for --what amg");
      cv::Mat image = samdeblur::io::read_image_bgr(image_path);
      if (!bgr) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
      results["cases"].push_back(sam::bench_mask_generator(bench, g, image, image_path, !bgr));
      print_generator(results["cases"].back(), bench.repeat);
      if (bench.profile)
        print_profile(results["cases"].back(),
                      fmt::format("one decoder batch ({} prompts)",
                                  results["cases"].back()["profile_prompts"].get<int64_t>()));
    }
    if (!json_path.empty()) samdeblur::write_file_atomic(json_path, results.dump(2) + "\n");
    return 0;
  });
}
