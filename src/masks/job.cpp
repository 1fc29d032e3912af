// The batch job behind sdb-masks: list images, skip finished ones, generate,
// write atomically, report progress and per-stage times.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/job.h"

namespace fs = std::filesystem;

namespace samdeblur::masks {

std::vector<std::string> list_input_images(const std::string& input) {
  std::error_code ec;
  if (fs::is_regular_file(input, ec)) return {input};
  if (!fs::is_directory(input, ec)) throw FileError(input, "no such image file or folder");
  static const std::vector<std::string> kExt = {".png", ".jpg",  ".jpeg", ".bmp",
                                                ".tif", ".tiff", ".webp"};
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(input)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (std::find(kExt.begin(), kExt.end(), ext) == kExt.end()) continue;
    if (name.rfind("mask_", 0) == 0) continue;
    out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty())
    throw FileError(input, "folder holds no image (png, jpg, jpeg, bmp, tif, tiff, webp)");
  return out;
}

std::string mask_output_path(const std::string& image, const MaskJobOptions& options) {
  return (fs::path(options.output_dir) /
          (fs::path(image).stem().string() + mask_file_extension(options.format)))
      .string();
}

std::string embedding_output_path(const std::string& image, const MaskJobOptions& options) {
  return (fs::path(options.output_dir) / (fs::path(image).stem().string() + "_embedding.npy"))
      .string();
}

std::string output_problem(const std::string& image, const MaskJobOptions& options) {
  const std::string mask = mask_output_path(image, options);
  std::error_code ec;
  if (!fs::exists(mask, ec)) return fs::path(mask).filename().string() + " is missing";
  // The expected size is the image's: decode it (as the job would).
  const cv::Mat img = cv::imread(image, cv::IMREAD_UNCHANGED);
  if (img.empty()) return "";  // unreadable image: keep what exists (as before)
  std::string why = mask_file_problem(mask, options.format, img.rows, img.cols);
  if (!why.empty()) return fs::path(mask).filename().string() + " " + why;
  if (options.save_embeddings) {
    const std::string emb = embedding_output_path(image, options);
    if (!fs::exists(emb, ec)) return fs::path(emb).filename().string() + " is missing";
    try {
      const auto t = io::read_npy(emb);
      if (t.sizes() != torch::IntArrayRef({1, 256, 64, 64}))
        return fmt::format("{} has shape {}, expected (1, 256, 64, 64)",
                           fs::path(emb).filename().string(), c10::str(t.sizes()));
    } catch (const std::exception& e) {
      return fs::path(emb).filename().string() + " does not decode: " + e.what();
    }
  }
  return "";
}

MaskJobSummary run_mask_job(const MaskJobOptions& options, const MaskFn& source) {
  FunctionSource s(source);
  return run_mask_job(options, s);
}

MaskJobSummary run_mask_job(const MaskJobOptions& options, MaskSource& source) {
  const auto t_start = std::chrono::steady_clock::now();
  const auto images = list_input_images(options.input);
  fs::create_directories(options.output_dir);
  std::vector<std::string> todo;
  MaskJobSummary summary;
  for (const auto& img : images) {
    std::error_code ec;
    if (!fs::exists(mask_output_path(img, options), ec)) {
      todo.push_back(img);
      continue;
    }
    const std::string why = output_problem(img, options);
    if (why.empty()) {
      ++summary.skipped;
      continue;
    }
    log::warn(fmt::format("{}: existing output is not complete, recomputing it: {}",
                          fs::path(img).filename().string(), why));
    ++summary.redone;
    todo.push_back(img);
  }
  if (summary.skipped > 0)
    log::info(fmt::format("{} of {} images already have their outputs in {}; skipping them",
                          summary.skipped, images.size(), options.output_dir));
  std::unique_ptr<ProgressBar> bar;
  if (options.progress)
    bar = std::make_unique<ProgressBar>("masks", static_cast<int64_t>(todo.size()), "img");
  for (const auto& img : todo) {
    const cv::Mat bgr = io::read_image_bgr(img);
    sam::GenerateResult result = source.generate(bgr, img);
    write_mask_file(mask_output_path(img, options), options.format, result, bgr.rows, bgr.cols,
                    options.exclusive_order);
    if (options.save_embeddings) {
      if (!result.image_embedding.defined())
        throw Error(
            "--save-embeddings: the mask source produced no image embedding (superpixels have "
            "none)");
      io::write_npy(embedding_output_path(img, options),
                    result.image_embedding.to(torch::kFloat32).contiguous());
    }
    ++summary.processed;
    summary.masks += static_cast<int64_t>(result.masks.size());
    summary.times.encoder += result.times.encoder;
    summary.times.decoder += result.times.decoder;
    summary.times.post += result.times.post;
    const std::string line = fmt::format(
        "{}: {} masks, {} crops, {} prompts | encoder {:.3f}s decoder {:.3f}s post {:.3f}s",
        fs::path(img).filename().string(), result.masks.size(), result.crops, result.points,
        result.times.encoder, result.times.decoder, result.times.post);
    log::info(line);
    if (bar) bar->update(1, fmt::format("{} masks", result.masks.size()));
  }
  if (bar) bar->finish();
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return summary;
}

}  // namespace samdeblur::masks
