#include "samdeblur/eval/evaluator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <sstream>
#include <thread>

#include <sys/resource.h>

#include "samdeblur/config/yaml_to_json.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/core/staging_dir.h"
#include "samdeblur/eval/input_check.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"

namespace samdeblur::eval {
namespace fs = std::filesystem;

models::SegMasks crop_masks(const models::SegMasks& m, int64_t i, int64_t h, int64_t j, int64_t w) {
  if (m.labels.defined())
    return models::SegMasks::from_labels(m.labels.slice(0, i, i + h).slice(1, j, j + w),
                                         m.num_masks, m.value);
  models::SegMasks out = m;
  out.dense = m.dense.slice(2, i, i + h).slice(3, j, j + w);
  return out;
}

namespace {

torch::Tensor forward_batch(models::DeblurNetImpl& net, const torch::Tensor& batch,
                            const std::vector<models::SegMasks>& masks) {
  return net.forward(batch, masks);
}

// Crop origins of the official grids(): crops of crop_h x crop_w with adaptive
// steps, the last row/column aligned to the border.
std::vector<std::pair<int64_t, int64_t>> grid_origins(int64_t h, int64_t w, int64_t ch,
                                                      int64_t cw) {
  const int64_t num_row = (h - 1) / ch + 1;
  const int64_t num_col = (w - 1) / cw + 1;
  const int64_t step_j =
      num_col == 1
          ? cw
          : static_cast<int64_t>(std::ceil(static_cast<double>(w - cw) / (num_col - 1) - 1e-8));
  const int64_t step_i =
      num_row == 1
          ? ch
          : static_cast<int64_t>(std::ceil(static_cast<double>(h - ch) / (num_row - 1) - 1e-8));
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
                    const ValOptions& val, const torch::Device& device) {
  c10::InferenceMode guard;
  const torch::Tensor lq = sample.lq.to(device).unsqueeze(0);
  const int64_t h = lq.size(2), w = lq.size(3);
  std::vector<models::SegMasks> masks;
  if (net.needs_masks()) {
    if (!sample.masks)
      throw Error("sample '" + sample.name + "' has no grouped masks but the network needs them");
    masks.push_back(sample.masks->to(device));
  }
  if (!val.grids) return forward_batch(net, lq, masks).squeeze(0).to(torch::kCPU);

  int64_t ch =
      val.crop_size_h > 0 ? val.crop_size_h : static_cast<int64_t>(val.crop_size_h_ratio * h);
  int64_t cw =
      val.crop_size_w > 0 ? val.crop_size_w : static_cast<int64_t>(val.crop_size_w_ratio * w);
  ch = std::min(std::max<int64_t>(ch, 1), h);
  cw = std::min(std::max<int64_t>(cw, 1), w);
  const auto origins = grid_origins(h, w, ch, cw);
  torch::Tensor preds = torch::zeros({3, h, w});
  torch::Tensor count = torch::zeros({1, h, w});
  for (std::size_t start = 0; start < origins.size();
       start += static_cast<std::size_t>(val.max_minibatch)) {
    const std::size_t end =
        std::min(origins.size(), start + static_cast<std::size_t>(val.max_minibatch));
    std::vector<torch::Tensor> crops;
    std::vector<models::SegMasks> crop_masks_list;
    for (std::size_t k = start; k < end; ++k) {
      const auto [i, j] = origins[k];
      crops.push_back(lq.slice(2, i, i + ch).slice(3, j, j + cw));
      if (!masks.empty()) crop_masks_list.push_back(crop_masks(masks[0], i, ch, j, cw));
    }
    const torch::Tensor out =
        forward_batch(net, torch::cat(crops, 0), crop_masks_list).to(torch::kCPU);
    for (std::size_t k = start; k < end; ++k) {
      const auto [i, j] = origins[k];
      preds.slice(1, i, i + ch).slice(2, j, j + cw).add_(out[static_cast<int64_t>(k - start)]);
      count.slice(1, i, i + ch).slice(2, j, j + cw).add_(1.0);
    }
  }
  return preds / count;
}

models::DeblurNet build_and_load(const models::NetworkOptions& network_g, const PathOptions& path,
                                 const torch::Device& device, bool allow_nonfinite) {
  models::DeblurNet net = models::build_network(network_g);
  if (!path.pretrain_network_g.empty()) {
    io::ReadOptions read;
    read.param_key = path.param_key_g;
    read.allow_nonfinite = allow_nonfinite;
    const auto sd = io::load_state_dict_file(path.pretrain_network_g, read);
    io::load_state_dict(*net, sd, path.strict_load_g, path.pretrain_network_g);
    log::info(fmt::format("loaded {} tensors from {}", sd.size(), path.pretrain_network_g));
  }
  net->to(device);
  net->eval();
  return net;
}

namespace {

std::string csv_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  return fmt::format("{:.6f}", v);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Minor page faults and CPU seconds (user + system) of the calling thread or the process.
struct Usage {
  int64_t minor_faults = 0;
  double cpu_seconds = 0;
};

Usage usage_now(bool this_thread) {
  rusage u{};
#ifdef RUSAGE_THREAD
  getrusage(this_thread ? RUSAGE_THREAD : RUSAGE_SELF, &u);
#else
  (void)this_thread;
  getrusage(RUSAGE_SELF, &u);
#endif
  const auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec;
  };
  return {static_cast<int64_t>(u.ru_minflt), sec(u.ru_utime) + sec(u.ru_stime)};
}

// A sample with what loading it cost (ImageTiming::load_*), measured on the loading thread.
struct LoadedSample {
  dataset::Sample sample;
  double seconds = 0;
  int64_t minor_faults = 0;
};

DatasetResult evaluate_dataset(models::DeblurNetImpl& net, const EvalConfig& cfg,
                               const dataset::DatasetOptions& ds, const torch::Device& device,
                               const std::string& image_dir, const RunOptions& run,
                               const std::string& output_dir) {
  DatasetResult r;
  r.key = ds.key;
  r.name = ds.name;
  const MetricList metric_list(cfg.val);
  r.metric_names = metric_list.names();
  const std::size_t psnr_index = metric_list.psnr_index();
  const auto samples = dataset::list_samples(ds);
  log::info(
      fmt::format("dataset '{}': {} images from {}", ds.name, samples.size(), ds.dataroot_lq));

  // ext: masks on the fly (SAM loaded lazily, on the first cache miss).
  std::unique_ptr<masks::MaskProvider> provider;
  if (ds.needs_masks() && ds.mask_source.on_the_fly()) {
    provider = std::make_unique<masks::MaskProvider>(
        ds.mask_source, masks::resolve_mask_cache_dir(ds.mask_source, output_dir), device);
    log::info(fmt::format("dataset '{}': masks on the fly from the lq images: {}; cache {}",
                          ds.name, provider->describe(), provider->cache_dir()));
  }
  // Decode the next sample (and compute its masks) on a worker thread while the network runs,
  // when a core is left over for it. Without one the loader preempts an OpenMP thread and every
  // parallel region of the forward waits for it at its barrier (the first image's stall on 2
  // cores, README "Performance"), so there the next sample is loaded after the forward.
  const bool spare_core =
      std::thread::hardware_concurrency() > static_cast<unsigned>(torch::get_num_threads());
  const auto policy = spare_core ? std::launch::async : std::launch::deferred;
  auto load = [&ds, &provider](const dataset::SamplePaths& p) {
    const auto t0 = Clock::now();
    const Usage u0 = usage_now(true);
    LoadedSample out{dataset::load_sample(p, ds, provider.get())};
    out.seconds = seconds_since(t0);
    out.minor_faults = usage_now(true).minor_faults - u0.minor_faults;
    return out;
  };
  std::future<LoadedSample> next = std::async(policy, load, samples[0]);
  ProgressBar bar("eval " + ds.name, static_cast<int64_t>(samples.size()));
  DatasetAccumulator acc(metric_list.size());
  for (std::size_t idx = 0; idx < samples.size(); ++idx) {
    const auto t_image = Clock::now();
    LoadedSample loaded = next.get();
    const dataset::Sample& sample = loaded.sample;
    if (idx + 1 < samples.size()) next = std::async(policy, load, samples[idx + 1]);
    ImageTiming timing{sample.name, loaded.seconds};
    timing.load_minor_faults = loaded.minor_faults;
    const auto t0 = Clock::now();
    const Usage u0 = usage_now(false);
    const torch::Tensor out = infer(net, sample, cfg.val, device);
    const Usage u1 = usage_now(false);
    timing.infer_seconds = seconds_since(t0);
    timing.infer_minor_faults = u1.minor_faults - u0.minor_faults;
    timing.infer_cpu_seconds = u1.cpu_seconds - u0.cpu_seconds;
    const auto t_post = Clock::now();
    const cv::Mat sr = io::tensor_to_image(out);
    ImageRecord rec = evaluate_sample(metric_list, sr, sample);
    rec.seconds = timing.infer_seconds;
    acc.add(rec);
    if (cfg.val.save_img) io::write_image_atomic(image_dir + "/" + sample.name + ".png", sr);
    if (run.progress)
      bar.update(1, fmt::format("{} {}={:.2f}", sample.name, r.metric_names[psnr_index],
                                rec.metrics[psnr_index]));
    r.images.push_back(std::move(rec));
    timing.post_seconds = seconds_since(t_post);
    timing.total_seconds = seconds_since(t_image);
    r.timing.push_back(std::move(timing));
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
  r.means = acc.means();
  r.mean_psnr_input = acc.mean_psnr_input();
  r.mcr = acc.mcr();
  r.summary = acc.json(r.metric_names);
  return r;
}

// timing.json: EvalResult::setup_seconds and every image's ImageTiming, per dataset.
nlohmann::json timing_json(const EvalResult& result) {
  nlohmann::json datasets = nlohmann::json::array();
  for (const auto& d : result.datasets) {
    nlohmann::json images = nlohmann::json::array();
    for (const auto& t : d.timing)
      images.push_back({{"name", t.name},
                        {"load_seconds", t.load_seconds},
                        {"infer_seconds", t.infer_seconds},
                        {"post_seconds", t.post_seconds},
                        {"total_seconds", t.total_seconds},
                        {"load_minor_faults", t.load_minor_faults},
                        {"infer_minor_faults", t.infer_minor_faults},
                        {"infer_cpu_seconds", t.infer_cpu_seconds}});
    datasets.push_back({{"name", d.name}, {"images", images}});
  }
  return {{"setup_seconds", result.setup_seconds},
          {"intra_op_threads", torch::get_num_threads()},
          {"datasets", datasets}};
}

void write_outputs(const EvalConfig& cfg, const EvalResult& result, const RunOptions& run,
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
      csv << "," << csv_number(rec.psnr_input) << "," << (rec.collapsed ? 1 : 0) << ","
          << rec.height << "," << rec.width << "," << fmt::format("{:.4f}", rec.seconds) << "\n";
    }
    nlohmann::json dj = d.summary;  // metric means, psnr_input, mcr
    dj["key"] = d.key;
    dj["name"] = d.name;
    dj["count"] = d.images.size();
    dj["mcr_threshold_db"] = cfg.val.mcr_threshold;
    if (!d.mask_cache_dir.empty())
      dj["mask_cache"] = {
          {"dir", d.mask_cache_dir}, {"hits", d.mask_cache_hits}, {"misses", d.mask_cache_misses}};
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
  write_file_atomic(result.output_dir + "/timing.json", timing_json(result).dump(2) + "\n");
  YAML::Emitter emitter;
  emitter << cfg.resolved;
  write_file_atomic(result.output_dir + "/config.yml", std::string(emitter.c_str()) + "\n");
}

}  // namespace

EvalResult run_evaluation(const EvalConfig& cfg, const RunOptions& run) {
  const torch::Device device = parse_device(run.device);
  if (cfg.path.pretrain_network_g.empty())
    log::warn("path.pretrain_network_g is empty: evaluating a randomly initialised network");
  EvalResult result;
  result.output_dir = run.output_dir.empty() ? "results/" + cfg.name : run.output_dir;
  torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed));
  if (!cfg.ignored_keys.empty())
    log::info(fmt::format("keys not used by sdb-eval: {}", fmt::join(cfg.ignored_keys, ", ")));
  // Check every dataset's files (pairing, complete images) before the (slow) network
  // runs and before the first output (eval/input_check.h).
  check_inputs(cfg.datasets);
  for (const auto& ds : cfg.datasets) {
    if (ds.needs_masks() && ds.mask_source.on_the_fly())  // checks the SAM checkpoint exists
      masks::MaskProvider(ds.mask_source,
                          masks::resolve_mask_cache_dir(ds.mask_source, result.output_dir));
  }
  // robustness: every output goes to a staging folder that replaces output_dir
  // only when complete; a failure leaves the previous result untouched.
  // The default mask cache folder (resolve_mask_cache_dir) is kept across runs.
  StagingDir staging(result.output_dir, {"summary.json", "metrics.csv"}, {"mask_cache"});
  const auto t_setup = Clock::now();
  models::DeblurNet net = build_and_load(cfg.network_g, cfg.path, device, run.allow_nonfinite);
  result.setup_seconds = seconds_since(t_setup);
  const auto execution = models::parse_execution(cfg.val.precision, cfg.val.memory_format,
                                                 cfg.source + ": val", device);
  models::check_execution_supported(execution, device);
  net->set_execution(execution);
  log::info(
      fmt::format("network runs in {}, {}", execution.precision(), execution.memory_format()));
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
