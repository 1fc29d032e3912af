// SamAutomaticMaskGenerator (segment_anything/automatic_mask_generator.py)
// reproduced step by step: generate -> _generate_masks -> _process_crop ->
// _process_batch, then postprocess_small_regions and the record encoding.
// The order of every filter and NMS is the official one; so is the use of
// the thresholded masks for boxes and RLEs.
#include "samdeblur/sam/mask_generator.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "samdeblur/core/error.h"

namespace samdeblur::sam {

OutputMode output_mode_from_name(const std::string& name) {
  if (name == "binary_mask") return OutputMode::binary_mask;
  if (name == "uncompressed_rle") return OutputMode::uncompressed_rle;
  if (name == "coco_rle") return OutputMode::coco_rle;
  throw ConfigError("output_mode: unknown value '" + name +
                    "' (valid: binary_mask, uncompressed_rle, coco_rle)");
}

std::string output_mode_name(OutputMode mode) {
  switch (mode) {
    case OutputMode::binary_mask:
      return "binary_mask";
    case OutputMode::uncompressed_rle:
      return "uncompressed_rle";
    case OutputMode::coco_rle:
      return "coco_rle";
  }
  return "?";
}

void MaskGeneratorOptions::validate() const {
  if (points_per_side.has_value() == !point_grids.empty())
    throw ConfigError("points_per_side / point_grids: exactly one of them must be provided");
  config::check_fields(*this);  // the declared ranges ("points_per_batch: must be >= 1, got 0")
  if (!point_grids.empty() && static_cast<int64_t>(point_grids.size()) < crop_n_layers + 1)
    throw ConfigError(fmt::format("point_grids: {} grids given, crop_n_layers = {} needs {}",
                                  point_grids.size(), crop_n_layers, crop_n_layers + 1));
  for (size_t i = 0; i < point_grids.size(); ++i)
    if (point_grids[i].dim() != 2 || point_grids[i].size(1) != 2)
      throw ConfigError(fmt::format("point_grids[{}]: expected (N, 2), got {}", i,
                                    c10::str(point_grids[i].sizes())));
}

nlohmann::json MaskRecord::to_json(OutputMode mode) const {
  nlohmann::json j;
  if (mode == OutputMode::uncompressed_rle)
    j["segmentation"] = {{"size", {rle.h, rle.w}}, {"counts", rle.counts}};
  else if (mode == OutputMode::coco_rle)
    j["segmentation"] = {{"size", {coco.h, coco.w}}, {"counts", coco.counts}};
  j["area"] = area;
  j["bbox"] = bbox;
  j["predicted_iou"] = predicted_iou;
  nlohmann::json pts = nlohmann::json::array();
  for (const auto& p : point_coords) pts.push_back({p[0], p[1]});
  j["point_coords"] = pts;
  j["stability_score"] = stability_score;
  j["crop_box"] = crop_box;
  return j;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

// MaskData of the official code, CPU-resident except inside a batch. Deviation (same
// records): while a crop is processed, a mask whose RLE is larger than its low-resolution
// logits and than kHeldRleBytes (a lazily upsampling predictor's 256 x 256 plane, 256 KiB) is
// held as those logits (`pending`, on the predictor's device) instead, and encoded again from
// them only if it survives the crop's NMS (encode_pending); the memory held per candidate is
// then at most 256 KiB (or one plane), whatever the image size.
struct MaskData {
  torch::Tensor iou_preds = torch::empty({0}, torch::kFloat32);    // (N,)
  torch::Tensor points = torch::empty({0, 2}, torch::kFloat64);    // (N, 2) image (or crop) pixels
  torch::Tensor stability = torch::empty({0}, torch::kFloat32);    // (N,)
  torch::Tensor boxes = torch::empty({0, 4}, torch::kInt64);       // (N, 4) XYXY
  torch::Tensor crop_boxes = torch::empty({0, 4}, torch::kInt64);  // (N, 4) XYXY
  std::vector<Rle> rles;                                           // (N,); empty when pending
  std::vector<torch::Tensor> pending;  // (N,); (h, w) low-resolution logits or undefined

  int64_t size() const { return static_cast<int64_t>(rles.size()); }

  // keep: bool mask or int64 indices (order kept, as MaskData.filter).
  void filter(const torch::Tensor& keep) {
    const auto idx =
        keep.scalar_type() == torch::kBool ? torch::nonzero(keep.cpu()).flatten() : keep.cpu();
    iou_preds = iou_preds.index_select(0, idx);
    points = points.index_select(0, idx);
    stability = stability.index_select(0, idx);
    boxes = boxes.index_select(0, idx);
    crop_boxes = crop_boxes.index_select(0, idx);
    std::vector<Rle> kept;
    std::vector<torch::Tensor> kept_pending;
    kept.reserve(static_cast<size_t>(idx.numel()));
    const auto* p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i) {
      kept.push_back(std::move(rles[p[i]]));
      kept_pending.push_back(std::move(pending[p[i]]));
    }
    rles = std::move(kept);
    pending = std::move(kept_pending);
  }

  void cat(MaskData&& o) {
    iou_preds = torch::cat({iou_preds, o.iou_preds});
    points = torch::cat({points, o.points});
    stability = torch::cat({stability, o.stability});
    boxes = torch::cat({boxes, o.boxes});
    crop_boxes = torch::cat({crop_boxes, o.crop_boxes});
    for (auto& r : o.rles) rles.push_back(std::move(r));
    for (auto& t : o.pending) pending.push_back(std::move(t));
  }
};

// ResizeLongestSide.get_preprocess_shape: (new_h, new_w).
std::pair<int64_t, int64_t> preprocess_shape(int64_t h, int64_t w, int64_t long_side) {
  const double scale = static_cast<double>(long_side) * 1.0 / static_cast<double>(std::max(h, w));
  const double nh = static_cast<double>(h) * scale, nw = static_cast<double>(w) * scale;
  return {static_cast<int64_t>(nh + 0.5), static_cast<int64_t>(nw + 0.5)};
}

// The RLE-level part of postprocess_small_regions (official static method).
void postprocess_small_regions(MaskData& data, double min_area, double nms_thresh) {
  if (data.size() == 0) return;
  const int64_t n = data.size();
  auto boxes = torch::empty({n, 4}, torch::kInt64);
  auto scores = torch::empty({n}, torch::kFloat32);
  std::vector<std::optional<Rle>> changed_rles(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto mask = rle_to_mask(data.rles[i]);
    auto [no_holes, changed_h] = remove_small_regions(mask, min_area, RegionMode::holes);
    auto [cleaned, changed_i] = remove_small_regions(no_holes, min_area, RegionMode::islands);
    const bool unchanged = !changed_h && !changed_i;
    boxes[i] = batched_mask_to_box(cleaned);
    scores[i] = unchanged ? 1.0f : 0.0f;
    // The official re-encodes changed masks only when kept; encoding here gives
    // the same RLE and bounds memory to one mask at a time.
    if (!unchanged) changed_rles[i] = mask_to_rle(cleaned.unsqueeze(0))[0];
  }
  const auto keep =
      batched_nms(boxes.to(torch::kFloat32), scores, torch::zeros({n}, torch::kInt64), nms_thresh);
  const auto* k = keep.data_ptr<int64_t>();
  for (int64_t t = 0; t < keep.numel(); ++t) {
    const int64_t i = k[t];
    if (changed_rles[i]) {
      data.rles[i] = std::move(*changed_rles[i]);
      data.boxes[i] = boxes[i];
    }
  }
  data.filter(keep);
}

}  // namespace

MaskGenerator::MaskGenerator(Predictor& predictor, MaskGeneratorOptions options)
    : predictor_(predictor), options_(std::move(options)) {
  options_.validate();
  if (options_.points_per_side)
    point_grids_ = build_all_layer_point_grids(*options_.points_per_side, options_.crop_n_layers,
                                               options_.crop_n_points_downscale_factor);
  else
    for (const auto& g : options_.point_grids)
      point_grids_.push_back(g.to(torch::kCPU, torch::kFloat64));
}

namespace {

struct BatchContext {
  Predictor& predictor;
  const MaskGeneratorOptions& o;
  Box crop;
  int64_t orig_h, orig_w;
  double sx, sy;  // crop pixels -> model input frame
  double mask_threshold;
  StageTimes& times;
};

// Upsampled masks per post-processing chunk: the chunk's full-resolution float logits stay
// within about this many bytes (cache-sized steps instead of B*C planes at once; memory
// bounded for large images). Every step of process_batch is row-wise, so the chunking does not
// change any mask.
constexpr int64_t kChunkBytes = int64_t{8} << 20;

// Candidates whose RLE passes this many bytes (and their low-resolution plane's: SAM's
// 256 x 256 float logits are as large) are held as that plane until the crop's NMS.
constexpr int64_t kHeldRleBytes = int64_t{256} << 10;

// Rows per chunk for the crop of ctx: the larger of the model-input and the image planes
// (upscale_masks passes through both) in float32, within kChunkBytes.
int64_t chunk_rows(const BatchContext& ctx) {
  const int64_t side = ctx.predictor.config().image_size;
  const int64_t plane_bytes =
      static_cast<int64_t>(sizeof(float)) * std::max(side * side, ctx.orig_h * ctx.orig_w);
  return std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(plane_bytes, 1));
}

// The full-resolution logits (K, h, w) of the crop for rows (K, ...) of a batch: upsampled
// from low-resolution logits (lazy) or already at full resolution.
torch::Tensor full_logits(const BatchContext& ctx, const torch::Tensor& rows, bool lazy) {
  return lazy ? ctx.predictor.upscale_masks(rows.unsqueeze(0)).squeeze(0) : rows;
}

// Thresholded logits (K, h, w) of the crop -> one RLE each in the image frame.
std::vector<Rle> encode(const BatchContext& ctx, const torch::Tensor& binary) {
  return mask_to_rle(uncrop_masks(binary, ctx.crop, ctx.orig_h, ctx.orig_w));
}

// The rows of one chunk that survive the filters of _process_batch, in order.
struct ChunkOut {
  torch::Tensor rows;  // (K,) int64 indices into the batch rows given to filter_chunk
  torch::Tensor stability, boxes;
  std::vector<Rle> rles;
};

// The part of _process_batch that needs full-resolution logits, for logits (K, H, W) of rows
// [row0, row0 + K): stability filter, thresholding, boxes, crop-edge filter, RLE.
ChunkOut filter_chunk(const BatchContext& ctx, const torch::Tensor& logits, int64_t row0) {
  ChunkOut out;
  out.rows = torch::arange(row0, row0 + logits.size(0), torch::kInt64);
  auto masks = logits;
  // Stability score on the logits.
  out.stability =
      calculate_stability_score(masks, ctx.mask_threshold, ctx.o.stability_score_offset);
  if (ctx.o.stability_score_thresh > 0.0) {
    const auto keep = out.stability >= ctx.o.stability_score_thresh;
    masks = masks.index({keep});
    out.stability = out.stability.index({keep});
    out.rows = out.rows.index({keep.cpu()});
  }
  // Threshold masks, boxes from the binary masks.
  masks = masks > ctx.mask_threshold;
  out.boxes = batched_mask_to_box(masks);
  // Drop boxes touching a crop edge that is not an image edge.
  const auto keep = ~is_box_near_crop_edge(out.boxes, ctx.crop, {0, 0, ctx.orig_w, ctx.orig_h});
  if (!keep.all().item<bool>()) {
    masks = masks.index({keep});
    out.stability = out.stability.index({keep});
    out.boxes = out.boxes.index({keep});
    out.rows = out.rows.index({keep.cpu()});
  }
  out.rles = encode(ctx, masks);
  out.stability = out.stability.cpu();
  out.boxes = out.boxes.cpu();
  return out;
}

// _process_batch: points (B, 2) float64 in crop pixels. Same filters in the same order as the
// official; deviations (same masks): masks that fail pred_iou_thresh are dropped before they are
// upsampled to the image size (the filter reads only the predicted IoU), the remaining ones are
// upsampled and filtered in chunks of about kChunkBytes, and with a lazily upsampling predictor
// a mask whose RLE is larger than its low-resolution logits and kHeldRleBytes keeps the logits
// instead (MaskData::pending).
MaskData process_batch(const BatchContext& ctx, const torch::Tensor& points) {
  const torch::Device device = ctx.predictor.device();
  const int64_t bsz = points.size(0);
  // ResizeLongestSide.apply_coords in float64 (the official passes numpy float64 on).
  auto transformed = points.clone();
  transformed.select(1, 0).mul_(ctx.sx);
  transformed.select(1, 1).mul_(ctx.sy);
  const auto in_points = transformed.to(device).unsqueeze(1);  // (B, 1, 2)
  const auto in_labels =
      torch::ones({bsz, 1}, torch::TensorOptions().dtype(torch::kInt32).device(device));
  auto t0 = Clock::now();
  PointPrediction pred =
      ctx.predictor.predict_low_res(in_points, in_labels, /*multimask_output=*/true);
  sync(device);
  ctx.times.decoder += seconds_since(t0);
  // Full-resolution masks when the predictor returned them, else low-resolution ones that
  // upscale_masks brings to the image size.
  const bool lazy = !pred.masks.defined();
  const auto& planes = lazy ? pred.low_res : pred.masks;
  TORCH_CHECK(
      planes.defined() && planes.dim() == 4 && planes.size(0) == bsz && pred.iou.dim() == 2 &&
          pred.iou.size(0) == bsz && pred.iou.size(1) == planes.size(1),
      "predict_low_res: expected masks or low_res (B, C, H, W) and iou (B, C) with B = ", bsz,
      ", got ", planes.sizes(), " and ", pred.iou.sizes());

  const int64_t n_out = planes.size(1);
  auto masks = planes.flatten(0, 1);                      // (B*C, h, w) logits
  auto iou = pred.iou.flatten(0, 1).to(torch::kFloat32);  // (B*C,)
  auto pts = points.repeat_interleave(n_out, 0);          // (B*C, 2), row i repeated C times
  pred = PointPrediction{};
  // Filter by predicted IoU.
  if (ctx.o.pred_iou_thresh > 0.0) {
    const auto keep = iou > ctx.o.pred_iou_thresh;
    masks = masks.index({keep});
    iou = iou.index({keep});
    pts = pts.index({keep.cpu()});
  }
  const int64_t rows = masks.size(0);
  const int64_t chunk = chunk_rows(ctx);
  // An RLE above this is replaced by its low-resolution plane.
  const int64_t max_rle_bytes =
      std::max(kHeldRleBytes, masks.size(1) * masks.size(2) * masks.element_size());
  MaskData out;
  std::vector<torch::Tensor> kept, stab, boxes;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const auto part = masks.slice(0, r0, std::min(rows, r0 + chunk));
    ChunkOut p = filter_chunk(ctx, full_logits(ctx, part, lazy), r0);
    const auto* row = p.rows.data_ptr<int64_t>();
    for (size_t k = 0; k < p.rles.size(); ++k) {
      Rle& rle = p.rles[k];
      torch::Tensor logits;
      if (lazy && static_cast<int64_t>(rle.counts.size() * sizeof(int64_t)) > max_rle_bytes) {
        logits = masks[row[k]].clone();
        rle = Rle{};
      }
      out.rles.push_back(std::move(rle));
      out.pending.push_back(std::move(logits));
    }
    kept.push_back(p.rows);
    stab.push_back(p.stability);
    boxes.push_back(p.boxes);
  }
  const auto idx = kept.empty() ? torch::empty({0}, torch::kInt64) : torch::cat(kept);
  out.iou_preds = iou.cpu().index_select(0, idx);
  out.points = pts.cpu().index_select(0, idx);
  out.stability = stab.empty() ? torch::empty({0}, torch::kFloat32) : torch::cat(stab);
  out.boxes = boxes.empty() ? torch::empty({0, 4}, torch::kInt64) : torch::cat(boxes);
  out.crop_boxes = torch::empty({out.size(), 4}, torch::kInt64);
  return out;
}

// Encodes the masks held as low-resolution logits (MaskData::pending) while the predictor still
// holds their crop: upsampled again in chunks (upscale_masks works per plane, so these are the
// logits the filters saw) and thresholded as in filter_chunk.
void encode_pending(const BatchContext& ctx, MaskData& data) {
  std::vector<int64_t> todo;
  for (int64_t i = 0; i < data.size(); ++i)
    if (data.pending[i].defined()) todo.push_back(i);
  const auto n = static_cast<int64_t>(todo.size());
  const int64_t chunk = chunk_rows(ctx);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    std::vector<torch::Tensor> planes;
    for (int64_t k = r0; k < std::min(n, r0 + chunk); ++k) planes.push_back(data.pending[todo[k]]);
    auto rles = encode(ctx, full_logits(ctx, torch::stack(planes), true) > ctx.mask_threshold);
    for (size_t k = 0; k < rles.size(); ++k) {
      data.rles[todo[r0 + k]] = std::move(rles[k]);
      data.pending[todo[r0 + k]] = torch::Tensor();
    }
  }
}

// _process_crop: the masks of crop `crop` (XYXY in the image) from the prompts
// `grid` ((N, 2) float64 in [0, 1]), deduplicated within the crop (box NMS on
// the predicted IoU) and moved back to the image frame. Adds to result.times,
// result.points and (keep_embedding) result.image_embedding.
MaskData process_crop(Predictor& predictor, const MaskGeneratorOptions& o, const cv::Mat& image,
                      const Box& crop, const torch::Tensor& grid, bool keep_embedding,
                      GenerateResult& result) {
  const int64_t orig_h = image.rows, orig_w = image.cols;
  const int64_t ch = crop[3] - crop[1], cw = crop[2] - crop[0];
  const cv::Mat cropped = image(cv::Rect(static_cast<int>(crop[0]), static_cast<int>(crop[1]),
                                         static_cast<int>(cw), static_cast<int>(ch)))
                              .clone();
  auto t0 = Clock::now();
  predictor.set_image(cropped);
  sync(predictor.device());
  result.times.encoder += seconds_since(t0);
  if (keep_embedding)  // float32 also for a bf16 / half predictor
    result.image_embedding = predictor.image_embedding().to(torch::kCPU, torch::kFloat).clone();

  // points_for_image = grid * [w, h] (float64), in crop pixels.
  const auto points_for_image =
      grid * torch::tensor({static_cast<double>(cw), static_cast<double>(ch)}, torch::kFloat64)
                 .unsqueeze(0);
  const auto [new_h, new_w] = preprocess_shape(ch, cw, predictor.config().image_size);
  const BatchContext ctx{predictor,
                         o,
                         crop,
                         orig_h,
                         orig_w,
                         static_cast<double>(new_w) / static_cast<double>(cw),
                         static_cast<double>(new_h) / static_cast<double>(ch),
                         predictor.mask_threshold(),
                         result.times};
  MaskData crop_data;
  const int64_t n_points = points_for_image.size(0);
  for (int64_t b0 = 0; b0 < n_points; b0 += o.points_per_batch) {
    const auto points = points_for_image.slice(0, b0, std::min(n_points, b0 + o.points_per_batch));
    result.points += points.size(0);
    crop_data.cat(process_batch(ctx, points));
  }
  // Remove duplicates within this crop (scores: predicted IoU).
  const auto keep = batched_nms(crop_data.boxes.to(torch::kFloat32), crop_data.iou_preds,
                                torch::zeros({crop_data.size()}, torch::kInt64), o.box_nms_thresh);
  crop_data.filter(keep);
  encode_pending(ctx, crop_data);  // survivors held as low-resolution logits
  // Back to the image frame.
  crop_data.boxes = uncrop_boxes_xyxy(crop_data.boxes, crop);
  crop_data.points = uncrop_points(crop_data.points, crop);
  crop_data.crop_boxes = torch::tensor({crop[0], crop[1], crop[2], crop[3]}, torch::kInt64)
                             .unsqueeze(0)
                             .repeat({crop_data.size(), 1});
  return crop_data;
}

// Removes duplicates between crops, preferring masks from smaller crops.
void remove_duplicates_between_crops(MaskData& data, double crop_nms_thresh) {
  const auto cb = data.crop_boxes;
  const auto area = (cb.select(1, 2) - cb.select(1, 0)) * (cb.select(1, 3) - cb.select(1, 1));
  const auto scores = torch::reciprocal(area.to(torch::kFloat32));
  const auto keep = batched_nms(data.boxes.to(torch::kFloat32), scores,
                                torch::zeros({data.size()}, torch::kInt64), crop_nms_thresh);
  data.filter(keep);
}

// The official output records of the kept masks, in order, encoded for `mode`.
std::vector<MaskRecord> to_records(MaskData& data, OutputMode mode) {
  const int64_t n = data.size();
  std::vector<MaskRecord> records(static_cast<size_t>(n));
  const auto boxes = data.boxes.accessor<int64_t, 2>();
  const auto crop_boxes = data.crop_boxes.accessor<int64_t, 2>();
  const auto pts = data.points.accessor<double, 2>();
  const auto ious = data.iou_preds.accessor<float, 1>();
  const auto stab = data.stability.accessor<float, 1>();
  for (int64_t i = 0; i < n; ++i) {
    MaskRecord& r = records[i];
    r.rle = std::move(data.rles[i]);
    if (mode == OutputMode::coco_rle) r.coco = coco_encode_rle(r.rle);
    if (mode == OutputMode::binary_mask) r.binary_mask = rle_to_mask(r.rle);
    r.area = area_from_rle(r.rle);
    r.bbox = box_xyxy_to_xywh({boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]});
    r.predicted_iou = ious[i];
    r.point_coords = {{pts[i][0], pts[i][1]}};
    r.stability_score = stab[i];
    r.crop_box =
        box_xyxy_to_xywh({crop_boxes[i][0], crop_boxes[i][1], crop_boxes[i][2], crop_boxes[i][3]});
  }
  return records;
}

}  // namespace

GenerateResult MaskGenerator::generate(const cv::Mat& image, bool keep_embedding) {
  if (image.empty() || image.depth() != CV_8U || image.channels() != 3)
    throw Error(fmt::format(
        "MaskGenerator::generate: expected a non-empty uint8 3-channel image, got {}x{} type {}",
        image.cols, image.rows, image.type()));
  c10::InferenceMode guard;
  const auto t_start = Clock::now();
  const auto& o = options_;
  GenerateResult result;

  // ---- _generate_masks ----
  const CropBoxes crops =
      generate_crop_boxes(image.rows, image.cols, o.crop_n_layers, o.crop_overlap_ratio);
  result.crops = static_cast<int64_t>(crops.boxes.size());
  MaskData data;
  for (size_t c = 0; c < crops.boxes.size(); ++c) {
    const auto& grid = point_grids_.at(static_cast<size_t>(crops.layer_idxs[c]));
    data.cat(
        process_crop(predictor_, o, image, crops.boxes[c], grid, keep_embedding && c == 0, result));
  }
  if (crops.boxes.size() > 1) remove_duplicates_between_crops(data, o.crop_nms_thresh);

  // ---- generate: small regions, encoding, records ----
  if (o.min_mask_region_area > 0)
    postprocess_small_regions(data, static_cast<double>(o.min_mask_region_area),
                              std::max(o.box_nms_thresh, o.crop_nms_thresh));
  result.masks = to_records(data, o.output_mode);
  result.times.post =
      std::max(0.0, seconds_since(t_start) - result.times.encoder - result.times.decoder);
  return result;
}

}  // namespace samdeblur::sam
