#pragma once
// The evaluation loop of `sdb-eval`, mirroring SAM-Deblur's
// ImageRestorationModel.dist_validation: per image, run the network (optionally
// in the official `grids` crops), convert output and target with tensor2img,
// compute the configured metrics on the uint8 BGR images, plus PSNR(input, gt)
// for the mode collapse rate (MCR).
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "samdeblur/dataset/paired.h"
#include "samdeblur/eval/config.h"
#include "samdeblur/eval/sample_metrics.h"
#include "samdeblur/models/network.h"

namespace samdeblur::eval {

struct RunOptions {
  std::string output_dir;      // default results/<name>
  std::string device = "cpu";  // cpu | cuda | cuda:N
  bool progress = true;
  // Load a checkpoint holding NaN / Inf weights (with a warning) instead of
  // refusing it (sdb-eval --allow-nonfinite; io::ReadOptions::allow_nonfinite).
  bool allow_nonfinite = false;
};

// Where one image's time went (timing.json): loading the sample (decoding lq / gt,
// reading and converting the grouped masks; on a worker thread when a core is spare),
// the network (`infer`), and the rest (tensor2img, metrics, writing the image).
// total: from asking for the sample to the end of the image, i.e. what the image adds
// to the run. Minor page faults of the process during the network, and of the loading
// thread during the load, count first-touched memory independently of machine load.
struct ImageTiming {
  std::string name;
  double load_seconds = 0, infer_seconds = 0, post_seconds = 0, total_seconds = 0;
  int64_t load_minor_faults = 0, infer_minor_faults = 0;
  double infer_cpu_seconds = 0;  // user + system time of the process during the network
};

struct DatasetResult {
  std::string key, name;
  std::vector<std::string> metric_names;  // MetricList::names(): psnr and ssim always present
  std::vector<ImageRecord> images;
  std::vector<double> means;  // arithmetic mean per metric (inf propagates, as in BasicSR)
  double mean_psnr_input = 0;
  double mcr = 0;          // collapsed / count
  nlohmann::json summary;  // DatasetAccumulator::json(): means, psnr_input, mcr
  // ext, masks computed on the fly (mask_source): cache folder and counters.
  std::string mask_cache_dir;
  int64_t mask_cache_hits = 0, mask_cache_misses = 0;
  std::vector<ImageTiming> timing;  // parallel to images
};

struct EvalResult {
  std::vector<DatasetResult> datasets;
  std::string output_dir;
  double setup_seconds = 0;  // building the network and loading the checkpoint
};

// Runs the network on one sample and returns the (3, H, W) float output on the
// CPU (not clamped; tensor2img clamps). Uses InferenceMode. With val.grids the
// image is processed in the official overlapping crops and averaged back.
torch::Tensor infer(models::DeblurNetImpl& net, const dataset::Sample& sample,
                    const ValOptions& val, const torch::Device& device);

// The masks of the image region [i, i + h) x [j, j + w): the label map (or the
// dense masks) cropped like the image (val.grids crops, sdb-deblur's tiles).
models::SegMasks crop_masks(const models::SegMasks& m, int64_t i, int64_t h, int64_t j, int64_t w);

// Builds the network, loads path.pretrain_network_g, evaluates every dataset,
// writes metrics.csv, summary.json, config.yml, timing.json (ImageTiming per image,
// scripts/bench_eval.sh reads it; and images/ when val.save_img) into the output
// folder, all atomically.
EvalResult run_evaluation(const EvalConfig& cfg, const RunOptions& run);

// Builds the network of `network_g`, loads path.pretrain_network_g (if set;
// strict_load_g, param_key_g) and moves it to `device`, in eval mode. Used by
// sdb-eval and sdb-train. Non-finite weights are refused (FileError naming each
// tensor and its count) unless allow_nonfinite (then logged as a warning).
models::DeblurNet build_and_load(const models::NetworkOptions& network_g, const PathOptions& path,
                                 const torch::Device& device, bool allow_nonfinite = false);

}  // namespace samdeblur::eval
