// Segment Anything timings for sdb-sam-bench (see include/samdeblur/sam/bench.h).
#include "samdeblur/sam/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "samdeblur/core/profile.h"
#include "samdeblur/sam/amg.h"
#include "samdeblur/sam/mask_generator.h"
#include "samdeblur/sam/predictor.h"
#include "samdeblur/sam/sam_model.h"

namespace samdeblur::sam {

namespace {

using Clock = std::chrono::steady_clock;

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// "auto" with a checkpoint; the named official type with random (seeded) weights otherwise.
SamConfig bench_config(const SamBenchOptions& o) {
  if (o.checkpoint.empty()) {
    torch::manual_seed(0);
    return SamConfig::from_name(o.random_model_type);
  }
  SamConfig cfg;
  cfg.model_type = "auto";
  return cfg;
}

// One decoder batch as the generator runs it: the first points_per_batch prompts of the point
// grid over the whole image, multimask, low-resolution logits.
nlohmann::json profile_decoder_batch(Predictor& predictor, const MaskGeneratorOptions& g,
                                     const cv::Mat& image) {
  predictor.set_image(image);
  const int64_t n = std::min<int64_t>(g.points_per_batch, *g.points_per_side * *g.points_per_side);
  auto points = build_point_grid(*g.points_per_side).slice(0, 0, n).to(torch::kFloat64);
  points.select(1, 0).mul_(image.cols);
  points.select(1, 1).mul_(image.rows);
  const auto coords = predictor.apply_coords(points).to(predictor.device()).unsqueeze(1);
  const auto labels =
      torch::ones({n, 1}, torch::TensorOptions().dtype(torch::kInt32).device(predictor.device()));
  predictor.predict_low_res(coords, labels, true);  // fills the per-image decoder cache
  return profile_ops([&] {
    predictor.predict_low_res(coords, labels, true);
    sync(predictor.device());
  });
}

}  // namespace

nlohmann::json profile_ops(const std::function<void()>& fn) {
  nlohmann::json out = nlohmann::json::array();
  // The decoder's and encoder's stage scopes (RECORD_FUNCTION "sdb::sam_*") broken down.
  for (const auto& [name, op] : sorted_profile(profile_top_level(fn, "sdb::sam_")))
    out.push_back({{"op", name}, {"ms", op.first}, {"calls", op.second}});
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double process_cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

nlohmann::json bench_image_encoder(const SamBenchOptions& o) {
  check_precision_supported(o.precision, o.device);
  auto model = make_sam(bench_config(o), o.checkpoint, o.device);
  const auto dtype = precision_dtype(o.precision);
  if (dtype != torch::kFloat) model->to(dtype);
  c10::InferenceMode guard;
  torch::manual_seed(0);
  const int64_t s = model->config.image_size;
  const auto x = torch::randn({1, 3, s, s}, torch::TensorOptions().device(o.device)).to(dtype);
  std::vector<double> secs, cpu;
  for (int i = 0; i < o.warmup + o.repeat; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    model->image_encoder->forward(x);
    sync(o.device);
    if (i < o.warmup) continue;
    secs.push_back(seconds_since(t0));
    cpu.push_back(process_cpu_seconds() - c0);
  }
  nlohmann::json result = {
      {"case", "encoder"},
      {"name", fmt::format("{} image encoder {}x{} {}", model->config.model_type, s, s,
                           precision_name(o.precision))},
      {"precision", precision_name(o.precision)},
      {"seconds", median(secs)},
      {"cpu_seconds", median(cpu)},
      {"runs", secs},
      {"runs_cpu", cpu}};
  if (o.profile)
    result["profile"] = profile_ops([&] {
      model->image_encoder->forward(x);
      sync(o.device);
    });
  return result;
}

nlohmann::json bench_mask_generator(const SamBenchOptions& o, const MaskGeneratorOptions& g,
                                    const cv::Mat& image, const std::string& image_path, bool rgb) {
  auto predictor =
      make_predictor(bench_config(o), o.checkpoint, o.device, /*half=*/false, o.precision);
  MaskGenerator generator(*predictor, g);
  std::vector<double> enc, dec, post, total, cpu;
  size_t n_masks = 0;
  int64_t n_points = 0;
  std::vector<int64_t> areas;  // per record, generator order: compared with the official
  for (int i = 0; i < o.warmup + o.repeat; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    const auto r = generator.generate(image);
    const double wall = seconds_since(t0);
    const double cpu_s = process_cpu_seconds() - c0;
    n_masks = r.masks.size();
    n_points = r.points;
    areas.clear();
    for (const auto& m : r.masks) areas.push_back(m.area);
    if (i < o.warmup) continue;
    enc.push_back(r.times.encoder);
    dec.push_back(r.times.decoder);
    post.push_back(r.times.post);
    total.push_back(wall);
    cpu.push_back(cpu_s);
  }
  nlohmann::json result = {
      {"case", "amg"},
      {"name", fmt::format("{} mask generator {}x{} {} ({} prompts, {} masks)",
                           predictor->config().model_type, image.cols, image.rows,
                           precision_name(o.precision), n_points, n_masks)},
      {"precision", precision_name(o.precision)},
      {"image", image_path},
      {"width", image.cols},
      {"height", image.rows},
      {"rgb", rgb},
      {"output_mode", output_mode_name(g.output_mode)},
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
      {"runs_cpu_total_s", cpu}};
  if (o.profile) {
    result["profile"] = profile_decoder_batch(*predictor, g, image);
    result["profile_prompts"] = std::min<int64_t>(g.points_per_batch, n_points);
  }
  return result;
}

}  // namespace samdeblur::sam
