#include "samdeblur/eval/evaluator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <sstream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/core/staging_dir.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "samdeblur/metrics/summary.h"

namespace samdeblur::eval {
namespace fs = std::filesystem;

torch::Device parse_device(const std::string& text) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw Error("--device: '" + text + "' is not a device (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw Error("--device " + text + ": CUDA is not available in this build/machine");
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error(fmt::format("--device {}: only {} CUDA device(s) present", text,
                              torch::cuda::device_count()));
  }
  return device;
}

namespace {

models::SegMasks crop_masks(const models::SegMasks& m, int64_t i, int64_t h, int64_t j, int64_t w) {
  if (m.labels.defined())
    return models::SegMasks::from_labels(m.labels.slice(0, i, i + h).slice(1, j, j + w), m.num_masks,
                                         m.value);
  models::SegMasks out = m;
  out.dense = m.dense.slice(2, i, i + h).slice(3, j, j + w);
  return out;
}

torch::Tensor forward_batch(models::DeblurNetImpl& net, const torch::Tensor& batch,
                            const std::vector<models::SegMasks>& masks) {
  return net.forward(batch, masks);
}

// Crop origins of the official grids(): crops of crop_h x crop_w with adaptive
// steps, the last row/column aligned to the border.
std::vector<std::pair<int64_t, int64_t>> grid_origins(int64_t h, int64_t w, int64_t ch, int64_t cw) {
  const int64_t num_row = (h - 1) / ch + 1;
  const int64_t num_col = (w - 1) / cw + 1;
  const int64_t step_j =
      num_col == 1 ? cw : static_cast<int64_t>(std::ceil(static_cast<double>(w - cw) / (num_col - 1) - 1e-8));
  const int64_t step_i =
      num_row == 1 ? ch : static_cast<int64_t>(std::ceil(static_cast<double>(h - ch) / (num_row - 1) - 1e-8));
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t i = 0;
  bool last_i = false;
  while (i < h && !last_i) {
    int64_t j = 0;
    if (i + ch >= h) {
      i = h - ch;
      last_i = true;
    }
    bool last_j = false;
    while (j < w && !last_j) {
      if (j + cw >= w) {
        j = w - cw;
        last_j = true;
      }
      out.emplace_back(i, j);
      j += step_j;
    }
    i += step_i;
  }
  return out;
}

}  // namespace

torch::Tensor infer(models::DeblurNetImpl& net, const dataset::Sample& sample,
                    const config::ValOptions& val, const torch::Device& device) {
  c10::InferenceMode guard;
  const torch::Tensor lq = sample.lq.to(device).unsqueeze(0);
  const int64_t h = lq.size(2), w = lq.size(3);
  std::vector<models::SegMasks> masks;
  if (net.needs_masks()) {
    if (!sample.masks) throw Error("sample '" + sample.name + "' has no grouped masks but the network needs them");
    masks.push_back(sample.masks->to(device));
  }
  if (!val.grids) return forward_batch(net, lq, masks).squeeze(0).to(torch::kCPU);

  int64_t ch = val.crop_size_h > 0 ? val.crop_size_h : static_cast<int64_t>(val.crop_size_h_ratio * h);
  int64_t cw = val.crop_size_w > 0 ? val.crop_size_w : static_cast<int64_t>(val.crop_size_w_ratio * w);
  ch = std::min(std::max<int64_t>(ch, 1), h);
  cw = std::min(std::max<int64_t>(cw, 1), w);
  const auto origins = grid_origins(h, w, ch, cw);
  torch::Tensor preds = torch::zeros({3, h, w});
  torch::Tensor count = torch::zeros({1, h, w});
  for (std::size_t start = 0; start < origins.size(); start += static_cast<std::size_t>(val.max_minibatch)) {
    const std::size_t end = std::min(origins.size(), start + static_cast<std::size_t>(val.max_minibatch));
    std::vector<torch::Tensor> crops;
    std::vector<models::SegMasks> crop_masks_list;
    for (std::size_t k = start; k < end; ++k) {
      const auto [i, j] = origins[k];
      crops.push_back(lq.slice(2, i, i + ch).slice(3, j, j + cw));
      if (!masks.empty()) crop_masks_list.push_back(crop_masks(masks[0], i, ch, j, cw));
    }
    const torch::Tensor out = forward_batch(net, torch::cat(crops, 0), crop_masks_list).to(torch::kCPU);
    for (std::size_t k = start; k < end; ++k) {
      const auto [i, j] = origins[k];
      preds.slice(1, i, i + ch).slice(2, j, j + cw).add_(out[static_cast<int64_t>(k - start)]);
      count.slice(1, i, i + ch).slice(2, j, j + cw).add_(1.0);
    }
  }
  return preds / count;
}

models::DeblurNet build_and_load(const config::EvalConfig& cfg, const torch::Device& device) {
  models::DeblurNet net = models::build_network(cfg.network_g);
  if (!cfg.path.pretrain_network_g.empty()) {
    const auto sd = io::load_state_dict_file(cfg.path.pretrain_network_g, cfg.path.param_key_g);
    io::load_state_dict(*net, sd, cfg.path.strict_load_g, cfg.path.pretrain_network_g);
    log::info(fmt::format("loaded {} tensors from {}", sd.size(), cfg.path.pretrain_network_g));
  } else {
    log::warn("path.pretrain_network_g is empty: evaluating a randomly initialised network");
  }
  net->to(device);
  net->eval();
  return net;
}

namespace {

std::vector<config::MetricOptions> effective_metrics(const config::ValOptions& val) {
  std::vector<config::MetricOptions> m = val.metrics;
  auto has = [&](const std::string& type) {
    return std::any_of(m.begin(), m.end(), [&](const auto& x) { return x.type == type; });
  };
  if (!has("calculate_psnr")) m.insert(m.begin(), config::MetricOptions{"psnr", "calculate_psnr"});
  if (!has("calculate_ssim")) m.push_back(config::MetricOptions{"ssim", "calculate_ssim"});
  return m;
}

double compute_metric(const config::MetricOptions& m, const cv::Mat& a, const cv::Mat& b) {
  if (m.type == "calculate_psnr") return metrics::calculate_psnr(a, b, m.crop_border, m.test_y_channel);
  metrics::Ssim3dOptions o;
  if (m.ssim3d_precision == "float32") {
    o.mode = metrics::Gaussian3d::direct;
    o.dtype = torch::kFloat32;
  }
  return metrics::calculate_ssim(a, b, m.crop_border, m.test_y_channel, m.ssim3d, o);
}

std::string csv_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  return fmt::format("{:.6f}", v);
}

nlohmann::json json_number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

DatasetResult evaluate_dataset(models::DeblurNetImpl& net, const config::EvalConfig& cfg,
                               const config::DatasetOptions& ds, const torch::Device& device,
                               const std::string& image_dir, const RunOptions& run,
                               const std::string& output_dir) {
  DatasetResult r;
  r.key = ds.key;
  r.name = ds.name;
  const auto metric_opts = effective_metrics(cfg.val);
  std::size_t psnr_index = 0;
  for (std::size_t k = 0; k < metric_opts.size(); ++k) {
    r.metric_names.push_back(metric_opts[k].name);
    if (metric_opts[k].type == "calculate_psnr" && metric_opts[psnr_index].type != "calculate_psnr") psnr_index = k;
  }
  const auto samples = dataset::list_samples(ds);
  log::info(fmt::format("dataset '{}': {} images from {}", ds.name, samples.size(), ds.dataroot_lq));

  // ext: masks on the fly (SAM loaded lazily, on the first cache miss).
  std::unique_ptr<dataset::MaskProvider> provider;
  if (ds.needs_masks() && ds.mask_source.on_the_fly()) {
    provider = std::make_unique<dataset::MaskProvider>(
        ds.mask_source, dataset::resolve_mask_cache_dir(ds.mask_source, output_dir), device);
    log::info(fmt::format("dataset '{}': masks on the fly from the lq images: {}; cache {}",
                          ds.name, provider->describe(), provider->cache_dir()));
  }
  // Decode the next sample (and compute its masks) on a worker thread while the network runs.
  auto load = [&ds, &provider](const dataset::SamplePaths& p) {
    return dataset::load_sample(p, ds, provider.get());
  };
  std::future<dataset::Sample> next = std::async(std::launch::async, load, samples[0]);
  ProgressBar bar("eval " + ds.name, static_cast<int64_t>(samples.size()));
  std::vector<double> sums(metric_opts.size(), 0.0);
  double sum_input = 0;
  int64_t collapsed = 0;
  for (std::size_t idx = 0; idx < samples.size(); ++idx) {
    dataset::Sample sample = next.get();
    if (idx + 1 < samples.size()) next = std::async(std::launch::async, load, samples[idx + 1]);
    const auto t0 = std::chrono::steady_clock::now();
    const torch::Tensor out = infer(net, sample, cfg.val, device);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const cv::Mat sr = io::tensor_to_image(out);
    const cv::Mat gt = io::tensor_to_image(sample.gt);
    const cv::Mat in = io::tensor_to_image(sample.lq.slice(0, 0, 3));

    ImageRecord rec;
    rec.name = sample.name;
    rec.height = sample.gt.size(1);
    rec.width = sample.gt.size(2);
    rec.seconds = seconds;
    for (std::size_t k = 0; k < metric_opts.size(); ++k) {
      rec.metrics.push_back(compute_metric(metric_opts[k], sr, gt));
      sums[k] += rec.metrics.back();
    }
    rec.psnr_input = compute_metric(metric_opts[psnr_index], in, gt);
    rec.collapsed = metrics::is_collapsed(rec.psnr_input, rec.metrics[psnr_index], cfg.val.mcr_threshold);
    sum_input += rec.psnr_input;
    collapsed += rec.collapsed ? 1 : 0;
    if (cfg.val.save_img) io::write_image_atomic(image_dir + "/" + sample.name + ".png", sr);
    if (run.progress)
      bar.update(1, fmt::format("{} {}={:.2f}", sample.name, r.metric_names[psnr_index], rec.metrics[psnr_index]));
    r.images.push_back(std::move(rec));
  }
  bar.finish();
  if (provider) {
    r.mask_cache_dir = provider->cache_dir();
    r.mask_cache_hits = provider->hits();
    r.mask_cache_misses = provider->misses();
    log::info(fmt::format("dataset '{}': mask cache {}: {} hits, {} misses{}", ds.name,
                          r.mask_cache_dir, r.mask_cache_hits, r.mask_cache_misses,
                          provider->model_loaded() ? " (SAM loaded)" : ""));
  }
  const double n = static_cast<double>(r.images.size());
  for (double s : sums) r.means.push_back(s / n);
  r.mean_psnr_input = sum_input / n;
  r.mcr = static_cast<double>(collapsed) / n;
  return r;
}

void write_outputs(const config::EvalConfig& cfg, const EvalResult& result, const RunOptions& run,
                   const std::string& device) {
  const bool multi = result.datasets.size() > 1;
  std::ostringstream csv;
  csv << "dataset,name";
  const auto& first_names = result.datasets.front().metric_names;
  for (const auto& m : first_names) csv << "," << csv_field(m);
  csv << ",psnr_input,collapsed,height,width,seconds\n";
  nlohmann::json datasets = nlohmann::json::array();
  for (const auto& d : result.datasets) {
    for (const auto& rec : d.images) {
      csv << csv_field(d.name) << "," << csv_field(rec.name);
      for (double v : rec.metrics) csv << "," << csv_number(v);
      csv << "," << csv_number(rec.psnr_input) << "," << (rec.collapsed ? 1 : 0) << "," << rec.height
          << "," << rec.width << "," << fmt::format("{:.4f}", rec.seconds) << "\n";
    }
    nlohmann::json dj;
    dj["key"] = d.key;
    dj["name"] = d.name;
    dj["count"] = d.images.size();
    for (std::size_t k = 0; k < d.metric_names.size(); ++k) dj[d.metric_names[k]] = json_number(d.means[k]);
    dj["psnr_input"] = json_number(d.mean_psnr_input);
    dj["mcr"] = d.mcr;
    dj["mcr_threshold_db"] = cfg.val.mcr_threshold;
    if (!d.mask_cache_dir.empty())
      dj["mask_cache"] = {{"dir", d.mask_cache_dir},
                          {"hits", d.mask_cache_hits},
                          {"misses", d.mask_cache_misses}};
    datasets.push_back(dj);
  }
  nlohmann::json summary = datasets.front();
  summary.erase("key");
  summary["datasets"] = datasets;
  summary["multi_dataset"] = multi;
  summary["config_file"] = cfg.source;
  summary["device"] = device;
  summary["checkpoint"] = cfg.path.pretrain_network_g;
  summary["config"] = config::yaml_to_json(cfg.resolved);
  write_file_atomic(result.output_dir + "/metrics.csv", csv.str());
  write_file_atomic(result.output_dir + "/summary.json", summary.dump(2) + "\n");
  YAML::Emitter emitter;
  emitter << cfg.resolved;
  write_file_atomic(result.output_dir + "/config.yml", std::string(emitter.c_str()) + "\n");
}

}  // namespace

EvalResult run_evaluation(const config::EvalConfig& cfg, const RunOptions& run) {
  const torch::Device device = parse_device(run.device);
  EvalResult result;
  result.output_dir = run.output_dir.empty() ? "results/" + cfg.name : run.output_dir;
  torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed));
  if (!cfg.ignored_keys.empty())
    log::info(fmt::format("keys not used by sdb-eval: {}", fmt::join(cfg.ignored_keys, ", ")));
  // Check every dataset's files before the (slow) network runs.
  for (const auto& ds : cfg.datasets) {
    dataset::list_samples(ds);
    if (ds.needs_masks() && ds.mask_source.on_the_fly())  // checks the SAM checkpoint exists
      dataset::MaskProvider(ds.mask_source,
                            dataset::resolve_mask_cache_dir(ds.mask_source, result.output_dir));
  }
  // robustness: every output goes to a staging folder that replaces output_dir
  // only when complete; a failure leaves the previous result untouched.
  // The default mask cache folder (resolve_mask_cache_dir) is kept across runs.
  StagingDir staging(result.output_dir, {"summary.json", "metrics.csv"}, {"mask_cache"});
  models::DeblurNet net = build_and_load(cfg, device);
  for (const auto& ds : cfg.datasets) {
    const std::string image_dir =
        staging.path() + "/images" + (cfg.datasets.size() > 1 ? "/" + ds.name : std::string());
    result.datasets.push_back(
        evaluate_dataset(*net, cfg, ds, device, image_dir, run, result.output_dir));
  }
  const std::string final_dir = result.output_dir;
  result.output_dir = staging.path();
  write_outputs(cfg, result, run, run.device);
  result.output_dir = final_dir;
  staging.commit();
  return result;
}

}  // namespace samdeblur::eval
