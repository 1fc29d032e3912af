// The demo dataset builder behind sdb-synth: photos -> GoPro-like pairs with
// synthetic camera-shake blur and superpixel masks.
#include "samdeblur/synth/demo_dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <set>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/io/image.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/superpixels.h"

namespace fs = std::filesystem;

namespace samdeblur::synth {

namespace {

// Image files of a folder (sorted) or the file itself. Unlike
// masks::list_input_images nothing is skipped silently: other files are named in
// a warning, and two photos with the same stem (their samples would collide)
// are an error.
std::vector<std::string> list_photos(const std::string& input) {
  std::error_code ec;
  if (fs::is_regular_file(input, ec)) return {input};
  if (!fs::is_directory(input, ec)) throw FileError(input, "no such photo file or folder");
  static const std::vector<std::string> kExt = {".png", ".jpg",  ".jpeg", ".bmp",
                                                ".tif", ".tiff", ".webp"};
  std::vector<std::string> out, ignored;
  for (const auto& entry : fs::directory_iterator(input)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (entry.is_regular_file() && std::find(kExt.begin(), kExt.end(), ext) != kExt.end())
      out.push_back(entry.path().string());
    else
      ignored.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  std::sort(ignored.begin(), ignored.end());
  if (!ignored.empty())
    log::warn(fmt::format("{}: ignoring {} entries that are not image files: {}", input,
                          ignored.size(), fmt::join(ignored, ", ")));
  if (out.empty())
    throw FileError(input, "folder holds no photo (png, jpg, jpeg, bmp, tif, tiff, webp)");
  std::map<std::string, std::string> stems;
  for (const auto& p : out) {
    const std::string stem = fs::path(p).stem().string();
    if (auto it = stems.find(stem); it != stems.end())
      throw FileError(
          p, fmt::format("has the same name stem as {}; sample names would collide", it->second));
    stems[stem] = p;
  }
  return out;
}

nlohmann::json options_json(const DemoDatasetOptions& o) {
  return {{"photos", o.photos},
          {"train_per_photo", o.train_per_photo},
          {"test_per_photo", o.test_per_photo},
          {"train_crop", o.train_crop},
          {"test_crop", o.test_crop},
          {"seed", o.seed},
          {"trajectory",
           {{"frames", o.trajectory.frames},
            {"max_shift", o.trajectory.max_shift},
            {"min_shift_ratio", o.trajectory.min_shift_ratio},
            {"max_rotation_deg", o.trajectory.max_rotation_deg},
            {"inertia", o.trajectory.inertia}}},
          {"blur", {{"linear_light", o.blur.linear_light}, {"gamma", o.blur.gamma}}},
          {"masks",
           {{"source", "superpixels (SLICO), computed on the blurry input; not Segment Anything"},
            {"region_size", o.superpixels.region_size},
            {"ruler", o.superpixels.ruler},
            {"iterations", o.superpixels.iterations},
            {"min_element_size_percent", o.superpixels.min_element_size_percent}}}};
}

// Relative paths (split/sub/file) this run writes, manifest.json excluded.
std::set<std::string> splits_plan(const std::vector<std::string>& photos,
                                  const DemoDatasetOptions& o) {
  std::set<std::string> plan;
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", o.train_per_photo},
                                 std::pair<std::string, int>{"test", o.test_per_photo}})
    for (const auto& p : photos)
      for (int k = 0; k < n; ++k) {
        const std::string name = sample_name(fs::path(p).stem().string(), k);
        for (const char* sub : {"input", "target", "input_mask"})
          plan.insert(split + "/" + sub + "/" + name + ".png");
        plan.insert(split + "/grouped_masks/" + name + ".npz");
      }
  return plan;
}

// A rerun with fewer samples into the same folder would leave files that the
// new manifest does not list and that loaders would still pick up: refuse.
void check_no_stale_files(const fs::path& out, const std::set<std::string>& plan) {
  std::vector<std::string> stale;
  for (const char* split : {"train", "test"})
    for (const char* sub : {"input", "target", "input_mask", "grouped_masks"}) {
      const fs::path dir = out / split / sub;
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) continue;
      for (const auto& e : fs::directory_iterator(dir)) {
        const std::string rel = std::string(split) + "/" + sub + "/" + e.path().filename().string();
        if (!plan.count(rel)) stale.push_back(rel);
      }
    }
  if (!stale.empty()) {
    std::sort(stale.begin(), stale.end());
    throw FileError(out.string(),
                    fmt::format("holds {} files this run would not write (e.g. {}); remove the "
                                "folder or choose another output",
                                stale.size(), stale.front()));
  }
}

}  // namespace

void DemoDatasetOptions::validate() const {
  if (photos.empty()) throw ConfigError("photos: required (a photo or a folder of photos)");
  if (output_dir.empty()) throw ConfigError("output_dir: required");
  if (train_per_photo < 0)
    throw ConfigError(fmt::format("train_per_photo: must be >= 0, got {}", train_per_photo));
  if (test_per_photo < 0)
    throw ConfigError(fmt::format("test_per_photo: must be >= 0, got {}", test_per_photo));
  if (train_per_photo + test_per_photo == 0)
    throw ConfigError("train_per_photo, test_per_photo: both are 0, nothing to generate");
  if (train_per_photo > 999 || test_per_photo > 999)
    throw ConfigError("train_per_photo, test_per_photo: at most 999 (names are <stem>_<k:03d>)");
  if (train_crop < 16)
    throw ConfigError(fmt::format("train_crop: must be >= 16, got {}", train_crop));
  if (test_crop < 16) throw ConfigError(fmt::format("test_crop: must be >= 16, got {}", test_crop));
  trajectory.validate();
  if (!(blur.gamma > 0) || !std::isfinite(blur.gamma))
    throw ConfigError(fmt::format("blur.gamma: must be > 0, got {}", blur.gamma));
  if (superpixels.region_size < 2)
    throw ConfigError(
        fmt::format("superpixels.region_size: must be >= 2, got {}", superpixels.region_size));
}

uint64_t sample_seed(uint64_t seed, const std::string& photo_stem, const std::string& split,
                     int k) {
  uint64_t s = mix_seed(seed, hash_name(photo_stem));
  s = mix_seed(s, hash_name(split));
  return mix_seed(s, static_cast<uint64_t>(k));
}

std::string sample_name(const std::string& photo_stem, int k) {
  return fmt::format("{}_{:03d}", photo_stem, k);
}

namespace {

struct Split {
  std::string name;
  int per_photo, crop;
};

// Reads every photo and checks it is large enough for each split's crop, before
// anything is written.
std::vector<cv::Mat> read_photos(const std::vector<std::string>& photos,
                                 const std::vector<Split>& splits) {
  std::vector<cv::Mat> images;
  for (const auto& p : photos) {
    cv::Mat img = io::read_image_bgr(p);
    for (const auto& s : splits)
      if (s.per_photo > 0 && (img.cols < s.crop || img.rows < s.crop))
        throw FileError(p, fmt::format("is {}x{}, smaller than the {}x{} {} crop", img.cols,
                                       img.rows, s.crop, s.crop, s.name));
    images.push_back(std::move(img));
  }
  return images;
}

// Sample k of `split` from `photo` (file photo_path): crop, blur, masks, and its
// four files under out/<split>/{input,target,input_mask,grouped_masks}.
SampleRecord make_sample(const cv::Mat& photo, const std::string& photo_path, const Split& s, int k,
                         const DemoDatasetOptions& options, const fs::path& out) {
  const std::string stem = fs::path(photo_path).stem().string();
  SampleRecord rec;
  rec.split = s.name;
  rec.name = sample_name(stem, k);
  rec.photo = fs::path(photo_path).filename().string();
  rec.size = s.crop;
  rec.seed = sample_seed(options.seed, stem, s.name, k);
  Rng rng(rec.seed);
  rec.x = static_cast<int>(rng.uniform_int(0, photo.cols - s.crop));
  rec.y = static_cast<int>(rng.uniform_int(0, photo.rows - s.crop));
  const auto trajectory = random_trajectory(options.trajectory, rng.next_u64());
  rec.extent = max_displacement(trajectory, s.crop, s.crop);

  // Rotation is about the patch centre = the crop centre, so a margin of
  // the crop's displacement (+2 for the bilinear neighbours) holds every
  // source pixel of the crop; past the photo's border it is reflected.
  const int m = static_cast<int>(std::ceil(rec.extent)) + 2;
  cv::Mat padded;
  cv::copyMakeBorder(photo, padded, m, m, m, m, cv::BORDER_REFLECT_101);
  const cv::Mat patch = padded(cv::Rect(rec.x, rec.y, s.crop + 2 * m, s.crop + 2 * m));
  const cv::Mat blurred = blur_image(patch, trajectory, options.blur);
  const cv::Mat input = blurred(cv::Rect(m, m, s.crop, s.crop)).clone();
  const cv::Mat target = photo(cv::Rect(rec.x, rec.y, s.crop, s.crop)).clone();

  const auto masks = samdeblur::masks::superpixel_masks(input, options.superpixels,
                                                        sam::OutputMode::uncompressed_rle);
  rec.superpixels = static_cast<int64_t>(masks.masks.size());
  const fs::path dir = out / s.name;
  const std::string file = rec.name + ".png";
  io::write_image_atomic((dir / "input" / file).string(), input);
  io::write_image_atomic((dir / "target" / file).string(), target);
  samdeblur::masks::write_mask_file((dir / "input_mask" / file).string(),
                                    samdeblur::masks::MaskFileFormat::label_png, masks, s.crop,
                                    s.crop);
  samdeblur::masks::write_mask_file((dir / "grouped_masks" / (rec.name + ".npz")).string(),
                                    samdeblur::masks::MaskFileFormat::grouped_npz, masks, s.crop,
                                    s.crop);
  return rec;
}

// manifest.json: the options and one entry per sample (written last).
void write_manifest(const fs::path& out, const DemoDatasetOptions& options,
                    const std::vector<SampleRecord>& samples) {
  nlohmann::json manifest;
  manifest["generator"] = "sdb-synth (samdeblur::synth::build_demo_dataset)";
  manifest["options"] = options_json(options);
  manifest["samples"] = nlohmann::json::array();
  for (const auto& r : samples)
    manifest["samples"].push_back({{"split", r.split},
                                   {"name", r.name},
                                   {"photo", r.photo},
                                   {"x", r.x},
                                   {"y", r.y},
                                   {"size", r.size},
                                   {"seed", r.seed},
                                   {"extent", r.extent},
                                   {"superpixels", r.superpixels}});
  write_file_atomic((out / "manifest.json").string(), manifest.dump(2) + "\n");
}

}  // namespace

DemoDatasetSummary build_demo_dataset(const DemoDatasetOptions& options) {
  options.validate();
  const auto t_start = std::chrono::steady_clock::now();
  const auto photos = list_photos(options.photos);
  const std::vector<Split> splits = {{"train", options.train_per_photo, options.train_crop},
                                     {"test", options.test_per_photo, options.test_crop}};
  const std::vector<cv::Mat> images = read_photos(photos, splits);

  const fs::path out(options.output_dir);
  check_no_stale_files(out, splits_plan(photos, options));
  for (const auto& s : splits)
    if (s.per_photo > 0)
      for (const char* sub : {"input", "target", "input_mask", "grouped_masks"})
        fs::create_directories(out / s.name / sub);

  const int64_t total =
      static_cast<int64_t>(photos.size()) * (options.train_per_photo + options.test_per_photo);
  std::unique_ptr<ProgressBar> bar;
  if (options.progress) bar = std::make_unique<ProgressBar>("synth", total, "img");

  DemoDatasetSummary summary;
  for (const auto& s : splits)
    for (size_t pi = 0; pi < photos.size(); ++pi)
      for (int k = 0; k < s.per_photo; ++k) {
        summary.samples.push_back(make_sample(images[pi], photos[pi], s, k, options, out));
        if (bar) bar->update(1, s.name + "/" + summary.samples.back().name);
      }
  if (bar) bar->finish();
  write_manifest(out, options, summary.samples);
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return summary;
}

}  // namespace samdeblur::synth
