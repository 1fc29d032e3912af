#pragma once
// Timings of Segment Anything for sdb-sam-bench (issue #3): the image encoder
// alone on a random (1, 3, S, S) input, and the whole automatic mask generator
// on one image split by stage (encoder / decoder / post-processing, as
// MaskGenerator measures them). scripts/bench_sam_official.py runs the same
// cases in Python. Each case is returned as the JSON object sdb-sam-bench writes
// (--json); the library prints nothing.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "samdeblur/sam/mask_generator_options.h"
#include "samdeblur/sam/precision.h"

namespace samdeblur::sam {

// Median of the values (mean of the middle two for an even count); 0 when empty.
double median(std::vector<double> values);
// Process CPU time (all threads), seconds: with --threads 1 a load-independent
// proxy of the compute time on a shared machine, reported beside the wall time.
double process_cpu_seconds();

struct SamBenchOptions {
  std::string checkpoint;  // vit_b/l/h state_dict .pth (model type detected)
  // With no checkpoint: random weights of this official type (torch::manual_seed(0)), for
  // short direction-finding runs; the figures to publish use a checkpoint shared with the
  // official side (scripts/bench_sam_official.py --make-weights).
  std::string random_model_type = "vit_b";
  Precision precision = Precision::fp32;
  torch::Device device = torch::kCPU;
  int warmup = 1;  // untimed runs before each case
  int repeat = 3;  // timed runs (medians reported)
  // After the timed runs, one run under LibTorch's profiler, CPU time per top-level operator
  // ("profile" in the case's JSON): the encoder forward; for the generator, one decoder batch
  // (predict_low_res of points_per_batch grid prompts, multimask) on the whole image.
  bool profile = false;
};

// {"op", "ms", "calls"} per top-level operator of fn, most expensive first; the operators
// inside the "sdb::sam_*" stage scopes also as "scope > op".
nlohmann::json profile_ops(const std::function<void()>& fn);

// {"case": "encoder", "name", "seconds", "cpu_seconds" (medians), "runs", "runs_cpu"
// [, "profile"]}.
nlohmann::json bench_image_encoder(const SamBenchOptions& options);

// image: uint8 HWC as handed to the generator (RGB unless the caller chose BGR).
// {"case": "amg", "name", "image", "width", "height", "rgb", the main generator
// options, "prompts", "masks", "encoder_s", "decoder_s", "post_s", "total_s",
// "cpu_total_s" (medians), "areas" (per record, generator order), "runs_total_s",
// "runs_cpu_total_s" [, "profile", "profile_prompts"]}.
nlohmann::json bench_mask_generator(const SamBenchOptions& options,
                                    const MaskGeneratorOptions& generator, const cv::Mat& image,
                                    const std::string& image_path, bool rgb);

}  // namespace samdeblur::sam
