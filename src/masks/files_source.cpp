// Mask source "files": precomputed masks read from a folder (see
// include/samdeblur/masks/source.h). For image <dir>/<stem>.<ext> it reads
// <folder>/<stem>.png (an official label map, sdb-masks --format label-png) or
// <folder>/<stem>.npz (official grouped masks, key "masks", --format grouped-npz).
#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/sha256.h"
#include "samdeblur/masks/source.h"
#include "samdeblur/sam/amg.h"

namespace samdeblur::masks {

namespace fs = std::filesystem;
using sam::GenerateResult;
using sam::MaskRecord;
using sam::OutputMode;

namespace {

// draw_segmask's index for grey value v in 1..255 (inverse of segmask_value):
// even values come from indices 0..126, odd ones from 127..254.
int64_t segmask_index(int64_t v) { return v % 2 == 0 ? v / 2 - 1 : 255 - (v + 1) / 2; }

// One record of an (H, W) bool mask (possibly empty), as the superpixel source
// fills them: whole-image crop box, predicted_iou = stability_score = 1.
MaskRecord record_of(const torch::Tensor& mask, OutputMode mode) {
  const int64_t h = mask.size(0), w = mask.size(1);
  MaskRecord r;
  r.rle = sam::mask_to_rle(mask.unsqueeze(0))[0];
  r.area = sam::area_from_rle(r.rle);
  const auto b = sam::batched_mask_to_box(mask);
  r.bbox = sam::box_xyxy_to_xywh(
      {b[0].item<int64_t>(), b[1].item<int64_t>(), b[2].item<int64_t>(), b[3].item<int64_t>()});
  if (r.area > 0) {
    const auto nz = torch::nonzero(mask).to(torch::kFloat64).mean(0);  // (y, x) centroid
    r.point_coords = {{nz[1].item<double>(), nz[0].item<double>()}};
  }
  r.predicted_iou = 1.0;
  r.stability_score = 1.0;
  r.crop_box = {0, 0, w, h};
  if (mode == OutputMode::coco_rle) r.coco = sam::coco_encode_rle(r.rle);
  if (mode == OutputMode::binary_mask) r.binary_mask = mask;
  return r;
}

// Records whose draw_segmask is exactly `values`: one record per distinct grey
// value v > 0 at index segmask_index(v) holding the pixels == v, and empty
// records at the unused indices below the largest one.
GenerateResult records_of_values(const torch::Tensor& values, OutputMode mode) {
  const auto uniq = std::get<0>(at::_unique(values, /*sorted=*/true));
  std::vector<torch::Tensor> by_index;
  for (int64_t k = 0; k < uniq.numel(); ++k) {
    const int64_t v = uniq[k].item<int64_t>();
    if (v <= 0) continue;
    const auto index = static_cast<std::size_t>(segmask_index(v));
    if (by_index.size() <= index) by_index.resize(index + 1);
    by_index[index] = values == v;
  }
  GenerateResult result;
  result.crops = 1;
  const auto empty = torch::zeros(values.sizes(), torch::kBool);
  for (const auto& m : by_index) result.masks.push_back(record_of(m.defined() ? m : empty, mode));
  return result;
}

class FilesSource : public MaskSource {
 public:
  FilesSource(const FilesSourceOptions& options, OutputMode mode) : options_(options), mode_(mode) {
    if (options_.folder.empty())
      throw ConfigError("mask_source.folder: the files source needs a folder of mask files");
    std::error_code ec;
    if (!fs::is_directory(options_.folder, ec))
      throw FileError(options_.folder, "mask folder (mask_source.folder) is not a folder");
  }

  GenerateResult generate(const cv::Mat& image_bgr, const std::string& image_path) override {
    const std::string path = mask_path(image_path);
    const torch::Tensor values = path_is_png(path) ? label_values(path) : grouped_values(path);
    if (values.size(0) != image_bgr.rows || values.size(1) != image_bgr.cols)
      throw FileError(path,
                      fmt::format("masks are {} x {} but the image {} is {} x {}", values.size(1),
                                  values.size(0), image_path, image_bgr.cols, image_bgr.rows));
    return records_of_values(values, mode_);
  }

  std::string content_key(const std::string& image_path) const override {
    const std::string path = mask_path(image_path);
    return fs::path(path).filename().string() + " sha256 " + sha256_file_hex(path);
  }

  std::string describe() const override {
    return "precomputed masks from " + options_.folder + " (<stem>.png label maps or .npz groups)";
  }

 private:
  static bool path_is_png(const std::string& path) { return fs::path(path).extension() == ".png"; }

  // <folder>/<stem>.png or .npz; FileError naming what was looked for.
  std::string mask_path(const std::string& image_path) const {
    if (image_path.empty()) throw Error("mask source 'files' needs the image's file name");
    const std::string stem = fs::path(image_path).stem().string();
    const fs::path png = fs::path(options_.folder) / (stem + ".png");
    const fs::path npz = fs::path(options_.folder) / (stem + ".npz");
    std::error_code ec;
    const bool has_png = fs::is_regular_file(png, ec), has_npz = fs::is_regular_file(npz, ec);
    if (has_png && has_npz)
      throw FileError(png.string(), "ambiguous masks for " + image_path + ": both this and " +
                                        npz.string() + " exist");
    if (!has_png && !has_npz)
      throw FileError(png.string(), "no mask file for image " + image_path + " (nor " +
                                        npz.filename().string() + ")");
    return (has_png ? png : npz).string();
  }

  // (H, W) int64 grey values of a label-map PNG.
  static torch::Tensor label_values(const std::string& path) {
    const cv::Mat lm = io::read_image_bgr(path, /*grayscale=*/true);
    return torch::from_blob(lm.data, {lm.rows, lm.cols}, torch::kUInt8).clone().to(torch::kLong);
  }

  // (H, W) int64 values of grouped masks (M, 1, H, W): group i -> i + 1 (i when
  // M = 256), so grouped_masks(label_map(records)) gives the same groups in the
  // same order. The groups must be disjoint.
  static torch::Tensor grouped_values(const std::string& path) {
    const torch::Tensor g = io::read_npz_array(path, "masks");
    if (g.dim() != 4 || g.size(1) != 1 || g.scalar_type() != torch::kBool || g.size(0) > 256)
      throw FileError(path,
                      fmt::format("'masks' must be bool (M, 1, H, W) with M <= 256, got {} {}",
                                  c10::str(g.sizes()), c10::toString(g.scalar_type())));
    const auto masks = g.squeeze(1).to(torch::kLong);  // (M, H, W)
    if (g.size(0) > 0 && masks.sum(0).max().item<int64_t>() > 1)
      throw FileError(path, "grouped masks overlap (an official grouped file is a partition)");
    const int64_t offset = g.size(0) == 256 ? 0 : 1;
    const auto ids = torch::arange(offset, g.size(0) + offset, torch::kLong).view({-1, 1, 1});
    return (masks * ids).sum(0);
  }

  FilesSourceOptions options_;
  OutputMode mode_;
};

}  // namespace

std::unique_ptr<MaskSource> make_files_source(const FilesSourceOptions& options,
                                              sam::OutputMode mode) {
  return std::make_unique<FilesSource>(options, mode);
}

}  // namespace samdeblur::masks
