#include "samdeblur/dataset/paired.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/pairing.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"

namespace samdeblur::dataset {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_image_ext(const std::string& ext) {
  static const char* const exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};
  const std::string e = lower(ext);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* x) { return e == x; });
}

// stem -> full path of the files in `dir` accepted by `accept`. Hidden files and
// sub-folders are skipped as by BasicSR's scandir; other files are reported.
std::map<std::string, std::string> scan(const std::string& dir, const std::string& what,
                                        bool (*accept)(const std::string&),
                                        std::map<std::string, std::string>* unusable = nullptr) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw FileError(dir, what + " folder does not exist");
  std::map<std::string, std::string> out;
  std::vector<std::string> rejected;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string fname = e.path().filename().string();
    if (fname.empty() || fname[0] == '.') continue;
    // robustness: remember entries named like a data file that are not one (for the pairing report)
    if (const std::string kind = non_file_kind(e); !kind.empty()) {
      if (unusable && accept(e.path().extension().string()))
        (*unusable)[e.path().stem().string()] = e.path().string() + " is " + kind;
      continue;
    }
    if (!accept(e.path().extension().string())) {
      rejected.push_back(fname);
      continue;
    }
    const std::string stem = e.path().stem().string();
    auto [it, inserted] = out.emplace(stem, e.path().string());
    if (!inserted)
      throw FileError(dir, fmt::format("two {} files share the name '{}': {} and {}", what, stem,
                                       fs::path(it->second).filename().string(), fname));
  }
  if (ec) throw FileError(dir, "cannot list folder: " + ec.message());
  if (!rejected.empty()) {
    std::sort(rejected.begin(), rejected.end());
    log::warn(fmt::format("{}: ignoring {} file(s) that are not {} files, e.g. '{}'", dir,
                          rejected.size(), what, rejected.front()));
  }
  if (out.empty()) throw FileError(dir, what + " folder holds no usable file");
  return out;
}

std::string format_tmpl(const std::string& tmpl, const std::string& stem) {
  const auto pos = tmpl.find("{}");
  if (pos == std::string::npos) return tmpl;
  return tmpl.substr(0, pos) + stem + tmpl.substr(pos + 2);
}

}  // namespace

std::vector<SamplePaths> list_samples(const DatasetOptions& o) {
  // robustness: name the key of an empty or missing dataroot
  for (const auto& [key, dir] :
       {std::pair<const char*, const std::string&>{"dataroot_gt", o.dataroot_gt},
        {"dataroot_lq", o.dataroot_lq},
        {"dataroot_mask", o.dataroot_mask}}) {
    if (std::string(key) == "dataroot_mask" && !o.masks_from_folder()) continue;
    std::error_code ec;
    if (dir.empty())
      throw ConfigError(fmt::format("datasets.{}.{} is empty: set it to a folder", o.key, key));
    if (!fs::is_directory(dir, ec))
      throw FileError(dir, fmt::format("folder of datasets.{}.{} does not exist", o.key, key));
  }
  FolderListing gt_l{"gt image", o.dataroot_gt, {}, {}}, lq_l{"lq image", o.dataroot_lq, {}, {}};
  FolderListing mask_l{"mask file", o.dataroot_mask, {}, {}};
  gt_l.files = scan(o.dataroot_gt, "gt image", is_image_ext, &gt_l.unusable);
  lq_l.files = scan(o.dataroot_lq, "lq image", is_image_ext, &lq_l.unusable);
  const auto& gt = gt_l.files;
  const auto& lq = lq_l.files;
  auto& mask = mask_l.files;
  if (!o.masks_from_folder()) {
    // no mask files (PairedImageDataset, or masks computed on the fly)
  } else if (o.grouped_masks()) {
    mask = scan(
        o.dataroot_mask, "grouped mask (.npz)",
        [](const std::string& ext) { return lower(ext) == ".npz"; }, &mask_l.unusable);
  } else if (o.needs_masks()) {
    mask = scan(o.dataroot_mask, "mask image", is_image_ext, &mask_l.unusable);
  }
  {  // robustness: name every file without a partner
    std::vector<const FolderListing*> partners{&lq_l};
    if (o.masks_from_folder()) partners.push_back(&mask_l);
    const auto unpaired = unpaired_files(gt_l, partners, [&](const std::string& stem) {
      return format_tmpl(o.filename_tmpl, stem);
    });
    if (!unpaired.empty())
      throw Error(format_problem_list(
          fmt::format(
              "dataset '{}': {} file(s) without a partner ({} has {} images, {} has {} images{}):",
              o.name, unpaired.size(), o.dataroot_lq, lq.size(), o.dataroot_gt, gt.size(),
              o.masks_from_folder()
                  ? fmt::format(", {} has {} mask files", o.dataroot_mask, mask.size())
                  : std::string()),
          unpaired));
  }
  if (gt.size() != lq.size())
    throw Error(fmt::format("dataset '{}': {} has {} images but {} has {}", o.name, o.dataroot_lq,
                            lq.size(), o.dataroot_gt, gt.size()));
  if (o.masks_from_folder() && mask.size() != gt.size())
    throw Error(fmt::format("dataset '{}': {} has {} mask files but {} has {} images", o.name,
                            o.dataroot_mask, mask.size(), o.dataroot_gt, gt.size()));
  std::vector<SamplePaths> out;
  out.reserve(gt.size());
  for (const auto& [stem, gt_path] : gt) {
    SamplePaths p;
    p.name = stem;
    p.gt = gt_path;
    const std::string key = format_tmpl(o.filename_tmpl, stem);
    auto it = lq.find(key);
    if (it == lq.end())
      throw FileError(gt_path,
                      fmt::format("no input image named '{}.*' in {}", key, o.dataroot_lq));
    p.lq = it->second;
    if (o.masks_from_folder()) {
      auto mit = mask.find(key);
      if (mit == mask.end())
        throw FileError(gt_path,
                        fmt::format("no mask file named '{}.*' in {}", key, o.dataroot_mask));
      p.mask = mit->second;
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::pair<cv::Mat, cv::Mat> read_pair_bgr(const SamplePaths& paths) {
  cv::Mat gt = io::read_image_bgr(paths.gt);
  cv::Mat lq = io::read_image_bgr(paths.lq);
  if (gt.size() != lq.size())
    throw Error(fmt::format("size mismatch: {} is {}x{} but {} is {}x{} (HxW)", paths.lq, lq.rows,
                            lq.cols, paths.gt, gt.rows, gt.cols));
  return {std::move(lq), std::move(gt)};
}

void attach_masks(Sample& s, const DatasetOptions& o, torch::Tensor m,
                  const std::string& mask_origin, const std::string& image) {
  const int64_t h = s.lq.size(1), w = s.lq.size(2);
  if (o.grouped_masks()) {
    if (m.dim() == 3) m = m.unsqueeze(1);  // (M, H, W) is accepted too
    if (m.dim() != 4 || m.size(1) != 1)
      throw FileError(mask_origin, fmt::format("'masks' must have shape (M,1,H,W), got {}",
                                               fmt::join(m.sizes(), "x")));
    if (m.size(2) != h || m.size(3) != w)
      throw Error(fmt::format("size mismatch: masks in {} are {}x{} but {} is {}x{} (HxW)",
                              mask_origin, m.size(2), m.size(3), image, h, w));
    const double value = o.mask_encoding == MaskEncoding::official ? 1.0 / 255.0 : 1.0;
    s.masks = models::SegMasks::from_masks(m, value);
    if (s.masks->num_masks == 0)
      throw FileError(mask_origin,
                      "every mask is empty (the official loader fails on such a file too)");
  } else if (o.needs_masks()) {
    // m: (1, H, W) float in [0, 1], the label-map PNG's grey values / 255
    if (m.size(1) != h || m.size(2) != w)
      throw Error(fmt::format("size mismatch: mask {} is {}x{} but {} is {}x{} (HxW)", mask_origin,
                              m.size(1), m.size(2), image, h, w));
    s.lq = torch::cat({s.lq, m}, 0);
  }
}

Sample load_sample(const SamplePaths& paths, const DatasetOptions& o,
                   masks::MaskProvider* provider) {
  Sample s;
  s.name = paths.name;
  std::tie(s.lq_u8, s.gt_u8) = read_pair_bgr(paths);
  const int64_t h = s.gt_u8.rows, w = s.gt_u8.cols;
  s.gt = io::image_to_tensor(s.gt_u8);
  s.lq = io::image_to_tensor(s.lq_u8);
  const bool on_the_fly = o.needs_masks() && o.mask_source.on_the_fly();
  if (on_the_fly && !provider)
    throw Error(
        fmt::format("dataset '{}' computes masks on the fly (mask_source) but no mask "
                    "provider was given",
                    o.name));
  // Where the masks come from, for messages.
  const std::string mask_origin =
      on_the_fly ? fmt::format("{} masks of {}", o.mask_source.type, paths.lq) : paths.mask;
  if (o.grouped_masks()) {
    attach_masks(s, o,
                 on_the_fly ? provider->grouped_masks(paths.lq)
                            : io::read_npz_array(paths.mask, "masks", io::NpyExpect{{h, w}}),
                 mask_origin, paths.gt);
  } else if (o.needs_masks()) {
    attach_masks(s, o,
                 on_the_fly ? io::image_to_tensor(provider->label_map(paths.lq))
                            : io::read_mask_png(paths.mask),
                 mask_origin, paths.gt);
  }
  return s;
}

}  // namespace samdeblur::dataset
