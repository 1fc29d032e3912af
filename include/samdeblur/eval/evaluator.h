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

#include "samdeblur/config/options.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/models/network.h"

namespace samdeblur::eval {

struct RunOptions {
  std::string output_dir;     // default results/<name>
  std::string device = "cpu";  // cpu | cuda | cuda:N
  bool progress = true;
};

struct ImageRecord {
  std::string name;
  int64_t height = 0, width = 0;
  std::vector<double> metrics;  // parallel to DatasetResult::metric_names
  double psnr_input = 0;        // PSNR(blurry input, gt), same options as the primary PSNR
  bool collapsed = false;       // psnr_input - psnr > mcr_threshold
  double seconds = 0;           // network time for this image
};

struct DatasetResult {
  std::string key, name;
  std::vector<std::string> metric_names;  // as configured; psnr and ssim always present
  std::vector<ImageRecord> images;
  std::vector<double> means;  // arithmetic mean per metric (inf propagates, as in BasicSR)
  double mean_psnr_input = 0;
  double mcr = 0;  // collapsed / count
  // ext, masks computed on the fly (mask_source): cache folder and counters.
  std::string mask_cache_dir;
  int64_t mask_cache_hits = 0, mask_cache_misses = 0;
};

struct EvalResult {
  std::vector<DatasetResult> datasets;
  std::string output_dir;
};

// Runs the network on one sample and returns the (3, H, W) float output on the
// CPU (not clamped; tensor2img clamps). Uses InferenceMode. With val.grids the
// image is processed in the official overlapping crops and averaged back.
torch::Tensor infer(models::DeblurNetImpl& net, const dataset::Sample& sample,
                    const config::ValOptions& val, const torch::Device& device);

// Parses "cpu", "cuda", "cuda:N"; throws Error when CUDA is requested but absent.
torch::Device parse_device(const std::string& text);

// Builds the network, loads path.pretrain_network_g, evaluates every dataset,
// writes metrics.csv, summary.json, config.yml (and images/ when val.save_img)
// into the output folder, all atomically.
EvalResult run_evaluation(const config::EvalConfig& cfg, const RunOptions& run);

// Builds the network of `cfg` and loads its checkpoint (if any) onto `device`.
models::DeblurNet build_and_load(const config::EvalConfig& cfg, const torch::Device& device);

}  // namespace samdeblur::eval
