// SAM-Deblur mask encodings (see include/samdeblur/masks/encodings.h).
// References: SAM-Deblur scripts/data_preparation/1_create_masks_with_sam.py
// (draw_segmask) and 2_masks_to_grouped_masks.py (grayscale_to_masks).
#include "samdeblur/masks/encodings.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <numeric>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"

namespace samdeblur::masks {

using sam::coco_encode_rle;
using sam::OutputMode;
using sam::Rle;

namespace {

// Calls fn(begin, end) for each foreground run of the RLE, as Fortran-order
// (column-major) pixel offsets.
template <typename Fn>
void for_each_run(const Rle& rle, int64_t h, int64_t w, Fn&& fn) {
  if (rle.h != h || rle.w != w)
    throw Error(
        fmt::format("mask of size [{}, {}] does not match the image [{}, {}]", rle.h, rle.w, h, w));
  int64_t idx = 0;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    const int64_t end = idx + rle.counts[i];
    if (end > h * w) throw Error("RLE counts exceed the mask size");
    if (i % 2 == 1) fn(idx, end);
    idx = end;
  }
}

}  // namespace

int64_t segmask_value(int64_t k) { return k < 127 ? 2 * (k + 1) : 2 * (255 - k) - 1; }

cv::Mat label_map(const std::vector<MaskRecord>& masks, int64_t h, int64_t w) {
  // Integer sums equal the official float32 sums (all partial sums are
  // integers far below 2^24).
  std::vector<int64_t> acc(static_cast<size_t>(h * w), 0);  // Fortran order
  for (size_t k = 0; k < masks.size(); ++k) {
    const int64_t v = segmask_value(static_cast<int64_t>(k));
    for_each_run(masks[k].rle, h, w, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) acc[p] += v;
    });
  }
  cv::Mat out(static_cast<int>(h), static_cast<int>(w), CV_8UC1);
  for (int64_t x = 0; x < w; ++x)
    for (int64_t y = 0; y < h; ++y)
      out.at<uint8_t>(static_cast<int>(y), static_cast<int>(x)) =
          static_cast<uint8_t>(std::clamp<int64_t>(acc[x * h + y], 0, 255));
  return out;
}

torch::Tensor grouped_masks(const cv::Mat& label_map_u8, std::vector<uint8_t>* values) {
  if (label_map_u8.empty() || label_map_u8.type() != CV_8UC1)
    throw Error(fmt::format("grouped_masks: expected a non-empty CV_8UC1 label map, got type {}",
                            label_map_u8.type()));
  const cv::Mat m = label_map_u8.isContinuous() ? label_map_u8 : label_map_u8.clone();
  const auto t = torch::from_blob(m.data, {m.rows, m.cols}, torch::kUInt8);
  bool present[256] = {};
  const uint8_t* p = m.data;
  for (int64_t i = 0; i < static_cast<int64_t>(m.total()); ++i) present[p[i]] = true;
  std::vector<torch::Tensor> groups;
  if (values) values->clear();
  for (int v = 0; v < 256; ++v)
    if (present[v]) {
      groups.push_back((t == v).unsqueeze(0));
      if (values) values->push_back(static_cast<uint8_t>(v));
    }
  return torch::stack(groups);  // (M, 1, H, W) bool
}

torch::Tensor exclusive_labels(const std::vector<MaskRecord>& masks, int64_t h, int64_t w,
                               ExclusiveOrder order) {
  std::vector<size_t> priority(masks.size());
  std::iota(priority.begin(), priority.end(), 0);
  if (order == ExclusiveOrder::smallest_first)
    std::stable_sort(priority.begin(), priority.end(),
                     [&](size_t a, size_t b) { return masks[a].area < masks[b].area; });
  std::vector<int32_t> fortran(static_cast<size_t>(h * w), 0);
  for (const size_t k : priority)
    for_each_run(masks[k].rle, h, w, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p)
        if (fortran[p] == 0) fortran[p] = static_cast<int32_t>(k + 1);
    });
  return torch::from_blob(fortran.data(), {w, h}, torch::kInt32).t().contiguous();
}

std::pair<torch::Tensor, torch::Tensor> exclusive_masks(const torch::Tensor& labels) {
  TORCH_CHECK(labels.dim() == 2, "exclusive_masks: expected (H, W) labels, got ", labels.sizes());
  const auto ids = std::get<0>(at::_unique(labels, /*sorted=*/true));
  std::vector<torch::Tensor> groups;
  std::vector<int64_t> mask_ids;
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t id = ids[i].item<int64_t>();
    groups.push_back((labels == id).unsqueeze(0));
    mask_ids.push_back(id - 1);
  }
  return {torch::stack(groups), torch::tensor(mask_ids, torch::kInt64)};
}

MaskFileFormat mask_file_format_from_name(const std::string& name) {
  if (name == "label-png") return MaskFileFormat::label_png;
  if (name == "grouped-npz") return MaskFileFormat::grouped_npz;
  if (name == "exclusive-npz") return MaskFileFormat::exclusive_npz;
  if (name == "coco-json") return MaskFileFormat::coco_json;
  throw ConfigError("format: unknown value '" + name +
                    "' (valid: label-png, grouped-npz, exclusive-npz, coco-json)");
}

std::string mask_file_format_name(MaskFileFormat format) {
  switch (format) {
    case MaskFileFormat::label_png:
      return "label-png";
    case MaskFileFormat::grouped_npz:
      return "grouped-npz";
    case MaskFileFormat::exclusive_npz:
      return "exclusive-npz";
    case MaskFileFormat::coco_json:
      return "coco-json";
  }
  return "?";
}

std::string mask_file_extension(MaskFileFormat format) {
  switch (format) {
    case MaskFileFormat::label_png:
      return ".png";
    case MaskFileFormat::grouped_npz:
    case MaskFileFormat::exclusive_npz:
      return ".npz";
    case MaskFileFormat::coco_json:
      return ".json";
  }
  return "";
}

void write_mask_file(const std::string& path, MaskFileFormat format, const GenerateResult& result,
                     int64_t h, int64_t w, ExclusiveOrder order) {
  switch (format) {
    case MaskFileFormat::label_png:
      io::write_image_atomic(path, label_map(result.masks, h, w));
      return;
    case MaskFileFormat::grouped_npz:
      io::write_npz(path, {{"masks", grouped_masks(label_map(result.masks, h, w))}},
                    /*compressed=*/true);
      return;
    case MaskFileFormat::exclusive_npz: {
      auto [masks, ids] = exclusive_masks(exclusive_labels(result.masks, h, w, order));
      io::write_npz(path, {{"masks", masks}, {"mask_ids", ids}}, /*compressed=*/true);
      return;
    }
    case MaskFileFormat::coco_json: {
      nlohmann::json records = nlohmann::json::array();
      for (const auto& r : result.masks) {
        if (r.coco.counts.empty() && !r.rle.counts.empty()) {
          MaskRecord copy = r;
          copy.coco = coco_encode_rle(r.rle);
          records.push_back(copy.to_json(OutputMode::coco_rle));
        } else {
          records.push_back(r.to_json(OutputMode::coco_rle));
        }
      }
      write_file_atomic(path, records.dump());
      return;
    }
  }
}

std::string mask_file_problem(const std::string& path, MaskFileFormat format, int64_t h,
                              int64_t w) {
  try {
    switch (format) {
      case MaskFileFormat::label_png: {
        const cv::Mat m = io::read_image_bgr(path, /*grayscale=*/true);
        if (m.rows != h || m.cols != w)
          return fmt::format("label map is {}x{}, the image {}x{}", m.cols, m.rows, w, h);
        return "";
      }
      case MaskFileFormat::grouped_npz:
      case MaskFileFormat::exclusive_npz: {
        const torch::Tensor m = io::read_npz_array(path, "masks");
        if (m.dim() != 4 || m.size(1) != 1 || m.size(2) != h || m.size(3) != w)
          return fmt::format("'masks' has shape {}, expected (M, 1, {}, {})", c10::str(m.sizes()),
                             h, w);
        if (format == MaskFileFormat::exclusive_npz) {
          const torch::Tensor ids = io::read_npz_array(path, "mask_ids");
          if (ids.dim() != 1 || ids.size(0) != m.size(0))
            return fmt::format("'mask_ids' has shape {}, expected ({},)", c10::str(ids.sizes()),
                               m.size(0));
        }
        return "";
      }
      case MaskFileFormat::coco_json: {
        std::ifstream in(path, std::ios::binary);
        if (!in) return "cannot be opened";
        const nlohmann::json j = nlohmann::json::parse(in);  // throws on truncated text
        if (!j.is_array()) return "is not a JSON list of mask records";
        for (const auto& r : j) {
          const auto seg = r.find("segmentation");
          if (seg == r.end() || !seg->contains("size")) continue;
          const auto size = (*seg)["size"].get<std::vector<int64_t>>();
          if (size != std::vector<int64_t>{h, w})
            return fmt::format("holds a {}x{} mask, the image is {}x{}", size.at(1), size.at(0), w,
                               h);
        }
        return "";
      }
    }
  } catch (const std::exception& e) {
    return std::string("does not decode: ") + e.what();
  }
  return "unknown format";
}

}  // namespace samdeblur::masks
