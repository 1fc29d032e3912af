// Mask source "sam": Segment Anything's automatic mask generator (sam/mask_generator.h).
#include <fmt/format.h>

#include <chrono>
#include <mutex>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/masks/source.h"

namespace samdeblur::masks {

namespace {

sam::GenerateResult run_generator(sam::MaskGenerator& generator, const cv::Mat& bgr, bool rgb,
                                  bool keep_embedding) {
  if (!rgb) return generator.generate(bgr, keep_embedding);
  cv::Mat image;
  cv::cvtColor(bgr, image, cv::COLOR_BGR2RGB);
  return generator.generate(image, keep_embedding);
}

// Over a generator owned elsewhere.
class BorrowedSamSource : public MaskSource {
 public:
  BorrowedSamSource(sam::MaskGenerator& generator, bool rgb, bool keep_embedding)
      : generator_(generator), rgb_(rgb), keep_embedding_(keep_embedding) {}
  sam::GenerateResult generate(const cv::Mat& image_bgr, const std::string&) override {
    return run_generator(generator_, image_bgr, rgb_, keep_embedding_);
  }
  std::string describe() const override {
    return fmt::format("SAM, images given as {}", rgb_ ? "RGB" : "BGR (as the official script)");
  }
  bool model_loaded() const override { return true; }

 private:
  sam::MaskGenerator& generator_;
  bool rgb_, keep_embedding_;
};

// Builds the predictor and the generator on the first image.
class SamSource : public MaskSource {
 public:
  SamSource(const MaskSourceOptions& options, MaskSourceContext context)
      : options_(options), context_(std::move(context)) {
    options_.generator.output_mode = context_.output_mode;
    options_.generator.validate();
    // Refused before the model is loaded (bf16 on a CPU without native bf16).
    sam::check_precision_supported(sam::precision_from_name(options_.precision), context_.device);
    if (!context_.predictor_factory) {
      context_.predictor_factory = [o = options_, c = context_]() {
        sam::SamConfig cfg;
        if (o.model_type == "auto")
          cfg.model_type = "auto";
        else
          cfg = sam::SamConfig::from_name(o.model_type);
        return sam::make_predictor(cfg, o.checkpoint, c.device, c.half,
                                   sam::precision_from_name(o.precision));
      };
    }
  }
  sam::GenerateResult generate(const cv::Mat& image_bgr, const std::string&) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!generator_) load();
    }
    return run_generator(*generator_, image_bgr, options_.rgb, context_.keep_embedding);
  }
  std::string describe() const override {
    return fmt::format("SAM {} from {}, {}, images given as {}", options_.model_type,
                       options_.checkpoint, options_.precision,
                       options_.rgb ? "RGB" : "BGR (as the official script)");
  }
  bool model_loaded() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return predictor_ != nullptr;
  }

 private:
  void load() {
    const auto t0 = std::chrono::steady_clock::now();
    predictor_ = context_.predictor_factory();
    if (!predictor_) throw Error("mask source sam: the SAM predictor factory returned nothing");
    generator_ = std::make_unique<sam::MaskGenerator>(*predictor_, options_.generator);
    log::info(
        fmt::format("mask source: SAM {} loaded from {} ({:.1f}s)", predictor_->config().model_type,
                    options_.checkpoint,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }

  MaskSourceOptions options_;
  MaskSourceContext context_;
  mutable std::mutex mutex_;
  std::unique_ptr<sam::Predictor> predictor_;
  std::unique_ptr<sam::MaskGenerator> generator_;
};

}  // namespace

std::unique_ptr<MaskSource> make_sam_source(const MaskSourceOptions& options,
                                            MaskSourceContext context) {
  return std::make_unique<SamSource>(options, std::move(context));
}

std::unique_ptr<MaskSource> make_sam_source(sam::MaskGenerator& generator, bool rgb,
                                            bool keep_embedding) {
  return std::make_unique<BorrowedSamSource>(generator, rgb, keep_embedding);
}

}  // namespace samdeblur::masks
