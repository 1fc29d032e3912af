// The GoPro training crops of SAM-Deblur's scripts/data_preparation/crop_gopro.py
// (images) and crop_masks.py (label maps): 512 x 512 crops on the crop_grid() of
// step 256 and threshold 0, numbered row by row from 1 and named
// <name>_s<NNN><ext>, PNG compression level 3. Source = the `gopro` output:
//   <source>/train/input/*.png               -> train/blur_crops/
//   <source>/train/target/*.png              -> train/sharp_crops/
//   <source>/train/input_predict_mask/*.png  -> train/blur_predeblur_mask_crops/  (if present)
//   <source>/train/grouped_masks/*.npz       -> train/grouped_masks_crops/        (if present)
// The folder names are the dataroots of configs/train/GoPro/*.yml.
//
// Grouped masks (bool (M, 1, H, W), key "masks") are cropped like the images and the
// masks left empty in a crop are dropped: SAM-Deblur made grouped masks as one mask
// per distinct value of a label map (2_masks_to_grouped_masks.py), so this equals
// grouping the cropped label map. Deviation: crop_gopro.py's removal of "x2", "x3",
// "x4", "x8" from file names (a DIV2K leftover) is not reproduced; GoPro names have none.
#include <fmt/format.h>
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "preparers.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare::detail {

namespace {

constexpr int kCrop = 512, kStep = 256, kThresh = 0, kPngCompression = 3;

std::vector<unsigned char> encode_png(const cv::Mat& img, const std::string& name) {
  std::vector<unsigned char> bytes;
  if (!cv::imencode(".png", img, bytes, {cv::IMWRITE_PNG_COMPRESSION, kPngCompression})) {
    throw FileError(name, "PNG encoding failed");
  }
  return bytes;
}

struct Source {
  std::string in_dir, out_dir;  // below train/
  std::string ext;
  bool grayscale = false, npz = false;
};

// The folders cropped alike: images always, label maps and grouped masks when present.
std::vector<Source> crop_sources(const fs::path& src) {
  std::vector<Source> sources = {{"input", "blur_crops", ".png"},
                                 {"target", "sharp_crops", ".png"}};
  if (fs::is_directory(src / "input_predict_mask")) {
    sources.push_back({"input_predict_mask", "blur_predeblur_mask_crops", ".png", true});
  }
  if (fs::is_directory(src / "grouped_masks")) {
    sources.push_back({"grouped_masks", "grouped_masks_crops", ".npz", false, true});
  }
  return sources;
}

// Pairing: every folder has the same names as target/. Returns the stems.
std::vector<std::string> paired_units(const fs::path& src, const std::vector<Source>& sources) {
  const auto targets = list_files(src / "target", ".png");
  for (const auto& s : sources) {
    for (const auto& f : list_files(src / s.in_dir, s.ext)) {
      if (!fs::is_regular_file(src / "target" / (f.stem().string() + ".png"))) {
        missing_partner(src / "target" / (f.stem().string() + ".png"), f);
      }
    }
  }
  std::vector<std::string> units;
  for (const auto& t : targets) {
    units.push_back(t.stem().string());
    for (const auto& s : sources) {
      const fs::path p = src / s.in_dir / (t.stem().string() + s.ext);
      if (!fs::is_regular_file(p)) missing_partner(p, t);
    }
  }
  return units;
}

// The crop grid of one image, fixed by the first folder read (input/).
struct Grid {
  cv::Size size;
  std::vector<int> rows, cols;
};

// Grouped masks: each crop keeps the masks that are not empty in it.
void crop_npz(const fs::path& in, const Source& s, const std::string& name, const Grid& grid,
              OutputTree& tree, std::vector<FileRecord>& files) {
  const auto masks = io::read_npz_array(in.string(), "masks");
  if (masks.dim() != 4 || masks.size(1) != 1 || masks.size(2) != grid.size.height ||
      masks.size(3) != grid.size.width) {
    throw FileError(in.string(),
                    fmt::format("masks of shape {}, expected (M, 1, {}, {})",
                                c10::str(masks.sizes()), grid.size.height, grid.size.width));
  }
  int index = 0;
  for (int y : grid.rows) {
    for (int x : grid.cols) {
      const auto crop = masks.slice(2, y, y + kCrop).slice(3, x, x + kCrop);
      const auto keep = crop.flatten(1).any(1).nonzero().flatten();  // (M',)
      const auto rel = fmt::format("{}/{}_s{:03d}.npz", s.out_dir, name, ++index);
      io::write_npz((tree.root() / rel).string(),
                    {{"masks", crop.index_select(0, keep).contiguous()}}, true);
      files.push_back(tree.record(rel));
    }
  }
}

// Images and label maps: crops as PNG (compression 3, as crop_gopro.py).
void crop_image(const fs::path& in, const fs::path& src, const Source& s, const std::string& name,
                Grid& grid, OutputTree& tree, std::vector<FileRecord>& files) {
  const cv::Mat img = io::read_image_bgr(in.string(), s.grayscale);
  if (grid.rows.empty()) {
    grid.size = img.size();
    grid.rows = crop_grid(img.rows, kCrop, kStep, kThresh);
    grid.cols = crop_grid(img.cols, kCrop, kStep, kThresh);
  } else if (img.size() != grid.size) {
    throw FileError(in.string(), fmt::format("{}x{} pixels, but {} has {}x{}", img.cols, img.rows,
                                             (src / "input" / (name + ".png")).string(),
                                             grid.size.width, grid.size.height));
  }
  int index = 0;
  for (int y : grid.rows) {
    for (int x : grid.cols) {
      const auto rel = fmt::format("{}/{}_s{:03d}{}", s.out_dir, name, ++index, s.ext);
      files.push_back(tree.write(rel, encode_png(img(cv::Rect(x, y, kCrop, kCrop)).clone(), rel)));
    }
  }
}

std::string crops_manifest_header(const PrepareOptions& options, int64_t pairs) {
  nlohmann::ordered_json header;
  header["dataset"] = "gopro-crops";
  header["split"] = "train";
  header["source"] = fs::absolute(options.source).string();
  header["pairs"] = pairs;
  header["crop_size"] = kCrop;
  header["step"] = kStep;
  header["thresh_size"] = kThresh;
  return header.dump();
}

}  // namespace

PrepareSummary gopro_crops(const PrepareOptions& options, int64_t expected_pairs) {
  if (!options.split.empty() && options.split != "train") {
    throw Error("prepare gopro-crops: unknown split '" + options.split + "' (valid: train)");
  }
  const fs::path src = fs::path(options.source) / "train";
  const std::vector<Source> sources = crop_sources(src);
  const std::vector<std::string> units = paired_units(src, sources);
  check_count("gopro-crops train in " + src.string(), expected_pairs,
              static_cast<int64_t>(units.size()));

  OutputTree tree(fs::path(options.output) / "train", "manifest-crops.json");
  PrepareSummary summary;
  summary.dataset = "gopro-crops";
  summary.split = "train";
  summary.pairs = static_cast<int64_t>(units.size());
  std::unique_ptr<ProgressBar> bar;
  if (options.progress) bar = std::make_unique<ProgressBar>("gopro-crops", summary.pairs);
  for (const auto& name : units) {
    if (tree.unit_done(name)) {
      ++summary.skipped_pairs;
      if (bar) bar->update(1, name);
      continue;
    }
    std::vector<FileRecord> files;
    Grid grid;
    for (const auto& s : sources) {
      const fs::path in = src / s.in_dir / (name + s.ext);
      if (s.npz) {
        crop_npz(in, s, name, grid, tree, files);
      } else {
        crop_image(in, src, s, name, grid, tree, files);
      }
    }
    tree.commit(name, files);
    if (bar) bar->update(1, name);
  }
  if (bar) bar->finish();
  for (const auto& u : units) summary.files += static_cast<int64_t>(tree.files_of(u).size());
  summary.manifest = tree.finish(units, crops_manifest_header(options, summary.pairs));
  log::info(fmt::format("gopro-crops train: {} images ({} already done), {} files -> {}",
                        summary.pairs, summary.skipped_pairs, summary.files, summary.manifest));
  return summary;
}

}  // namespace samdeblur::prepare::detail
