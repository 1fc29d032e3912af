// The file side of sdb-deblur (deblur/batch.h).
#include "samdeblur/deblur/batch.h"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/io/image.h"

namespace samdeblur::deblur {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_image(const fs::path& p) {
  const auto& exts = image_extensions();
  return std::find(exts.begin(), exts.end(), lower(p.extension().string())) != exts.end();
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::vector<std::string> list_folder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file(ec) || !is_image(e.path())) continue;
    out.push_back(e.path().string());
  }
  if (ec) throw FileError(dir, "cannot list folder: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (std::size_t i = 0; i < g.gl_pathc; ++i) {
      const fs::path p(g.gl_pathv[i]);
      std::error_code ec;
      if (fs::is_regular_file(p, ec) && is_image(p)) out.push_back(p.string());
    }
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

fs::path canonical_or_absolute(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? fs::absolute(p) : c;
}

std::string extension_of(const std::string& format) { return format == "jpg" ? ".jpg" : ".png"; }

// Encodes with the batch's format (png: io::write_image_atomic, as sdb-eval).
void write_output(const std::string& path, const cv::Mat& image, const BatchOptions& o) {
  if (o.format != "jpg") return io::write_image_atomic(path, image);
  std::vector<uchar> bytes;
  if (!cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, o.quality}))
    throw FileError(path, "JPEG encoding failed");
  write_file_atomic(path, bytes.data(), bytes.size());
}

std::string mask_path(const BatchItem& item) {
  const fs::path p(item.output);
  return (p.parent_path() / (p.stem().string() + "_mask.png")).string();
}
std::string compare_path(const BatchItem& item) {
  const fs::path p(item.output);
  return (p.parent_path() / (p.stem().string() + "_compare" + p.extension().string())).string();
}

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Whether every output of the item is already there (written atomically, so complete).
bool already_done(const BatchItem& item, const BatchOptions& o, bool masks) {
  if (!exists(item.output)) return false;
  if (o.save_masks && masks && !exists(mask_path(item))) return false;
  return !o.compare || exists(compare_path(item));
}

}  // namespace

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> exts = {".png", ".jpg",  ".jpeg", ".bmp",
                                                ".tif", ".tiff", ".webp"};
  return exts;
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  std::set<fs::path> seen;
  for (const auto& input : inputs) {
    std::error_code ec;
    std::vector<std::string> found;
    if (fs::is_directory(input, ec)) {
      found = list_folder(input);
      if (found.empty()) throw FileError(input, "folder holds no image file (png, jpg, ...)");
    } else if (fs::exists(input, ec)) {
      if (!fs::is_regular_file(input, ec)) throw FileError(input, "not a regular file");
      found = {input};
    } else if (has_glob_chars(input)) {
      found = expand_glob(input);
      if (found.empty()) throw FileError(input, "pattern matches no image file");
    } else {
      throw FileError(input, "no such file or folder");
    }
    for (auto& f : found)
      if (seen.insert(canonical_or_absolute(f)).second) out.push_back(std::move(f));
  }
  return out;
}

void BatchOptions::validate() const {
  if (output_dir.empty()) throw ConfigError("output folder (-o) is empty");
  if (format != "png" && format != "jpg")
    throw ConfigError("format: must be png or jpg, got '" + format + "'");
  if (quality < 1 || quality > 100)
    throw ConfigError(fmt::format("quality: must be in 1..100, got {}", quality));
}

std::vector<BatchItem> plan_outputs(const std::vector<std::string>& images, const BatchOptions& o) {
  const fs::path out_dir = canonical_or_absolute(o.output_dir);
  std::map<std::string, std::string> by_output;
  std::vector<BatchItem> items;
  for (const auto& image : images) {
    const fs::path in = canonical_or_absolute(image);
    if (in.parent_path() == out_dir)
      throw Error(fmt::format(
          "output folder {} is the folder of the input {}: refusing to write next to the "
          "inputs (outputs are named like them); choose another -o",
          o.output_dir, image));
    BatchItem item{
        image, (fs::path(o.output_dir) / (fs::path(image).stem().string() + extension_of(o.format)))
                   .string()};
    std::error_code ec;
    if (fs::exists(item.output, ec) && fs::equivalent(item.output, image, ec))
      throw Error(fmt::format("output {} would overwrite the input {}", item.output, image));
    const auto [it, inserted] = by_output.emplace(item.output, image);
    if (!inserted)
      throw Error(fmt::format("inputs {} and {} would both be written to {}: rename one",
                              it->second, image, item.output));
    items.push_back(std::move(item));
  }
  return items;
}

cv::Mat compare_image(const cv::Mat& input, const cv::Mat& output, const cv::Mat& label_map) {
  std::vector<cv::Mat> panels = {input, output};
  if (!label_map.empty()) {
    // A fixed colour per grey value (a multiplicative hash), blended 50 / 50.
    cv::Mat lut(1, 256, CV_8UC3);
    for (int v = 0; v < 256; ++v) {
      const uint32_t h = static_cast<uint32_t>(v + 1) * 2654435761u;
      lut.at<cv::Vec3b>(0, v) = cv::Vec3b(static_cast<uchar>(h >> 24), static_cast<uchar>(h >> 16),
                                          static_cast<uchar>(h >> 8));
    }
    cv::Mat grey3, colours, overlay;
    cv::cvtColor(label_map, grey3, cv::COLOR_GRAY2BGR);
    cv::LUT(grey3, lut, colours);
    cv::addWeighted(input, 0.5, colours, 0.5, 0.0, overlay);
    panels.push_back(overlay);
  }
  cv::Mat out;
  cv::hconcat(panels, out);
  return out;
}

BatchSummary run_batch(Deblurrer& deblurrer, const BatchOptions& o, const JsonLineFn& on_line) {
  o.validate();
  const auto items = plan_outputs(expand_inputs(o.inputs), o);
  fs::create_directories(o.output_dir);
  remove_stale_temporaries(o.output_dir, false);
  BatchSummary summary;
  ProgressBar bar("deblur", static_cast<int64_t>(items.size()));
  for (const auto& item : items) {
    nlohmann::json line = {{"image", item.input}, {"output", item.output}};
    if (already_done(item, o, deblurrer.needs_masks())) {
      ++summary.skipped;
      line["status"] = "skipped";
      if (on_line) on_line(line);
      if (o.progress) bar.update(1, fs::path(item.input).filename().string() + " (done before)");
      continue;
    }
    const auto t0 = Clock::now();
    try {
      Deblurrer::Result r = deblurrer.deblur_file(item.input);
      const auto tw = Clock::now();
      if (o.save_masks && !r.label_map.empty())
        io::write_image_atomic(mask_path(item), r.label_map);
      if (o.compare)
        write_output(compare_path(item), compare_image(r.input, r.image, r.label_map), o);
      write_output(item.output, r.image, o);  // last: its presence marks the image done
      const double write_s = since(tw);
      ++summary.done;
      line["status"] = "done";
      line["height"] = r.image.rows;
      line["width"] = r.image.cols;
      line["seconds"] = {{"masks", r.masks_seconds},
                         {"network", r.network_seconds},
                         {"io", r.io_seconds + write_s},
                         {"total", since(t0)}};
    } catch (const std::exception& e) {
      ++summary.failed;
      summary.failures.push_back(item.input + ": " + e.what());
      log::error(fmt::format("{}: not deblurred: {}", item.input, e.what()));
      line["status"] = "failed";
      line["error"] = e.what();
    }
    if (on_line) on_line(line);
    if (o.progress) bar.update(1, fs::path(item.input).filename().string());
  }
  bar.finish();
  return summary;
}

}  // namespace samdeblur::deblur
