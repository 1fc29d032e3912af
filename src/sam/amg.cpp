// Mirrors segment_anything/utils/amg.py and torchvision.ops.{nms,batched_nms}
// (torchvision 0.14); see include/samdeblur/sam/amg.h for the contracts.
#include "samdeblur/sam/amg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"

namespace samdeblur::sam {

torch::Tensor build_point_grid(int64_t n_per_side) {
  TORCH_CHECK(n_per_side >= 1, "build_point_grid: n_per_side must be >= 1, got ", n_per_side);
  const int64_t n = n_per_side;
  // np.linspace(offset, 1 - offset, n): start + i * step, the last value set to stop.
  const double offset = 1.0 / (2.0 * static_cast<double>(n));
  const double start = offset, stop = 1.0 - offset;
  std::vector<double> side(static_cast<size_t>(n));
  const double step = n > 1 ? (stop - start) / static_cast<double>(n - 1) : 0.0;
  for (int64_t i = 0; i < n; ++i) side[i] = static_cast<double>(i) * step + start;
  if (n > 1) side[n - 1] = stop;
  auto grid = torch::empty({n * n, 2}, torch::kFloat64);
  auto g = grid.accessor<double, 2>();
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col < n; ++col) {
      g[row * n + col][0] = side[col];
      g[row * n + col][1] = side[row];
    }
  return grid;
}

std::vector<torch::Tensor> build_all_layer_point_grids(int64_t n_per_side, int64_t n_layers,
                                                       int64_t scale_per_layer) {
  std::vector<torch::Tensor> grids;
  for (int64_t i = 0; i <= n_layers; ++i) {
    // int(n_per_side / (scale_per_layer ** i)): float division, truncation.
    const double denom = std::pow(static_cast<double>(scale_per_layer), static_cast<double>(i));
    const auto n_points = static_cast<int64_t>(static_cast<double>(n_per_side) / denom);
    grids.push_back(build_point_grid(n_points));
  }
  return grids;
}

CropBoxes generate_crop_boxes(int64_t im_h, int64_t im_w, int64_t n_layers, double overlap_ratio) {
  CropBoxes out;
  const int64_t short_side = std::min(im_h, im_w);
  out.boxes.push_back({0, 0, im_w, im_h});
  out.layer_idxs.push_back(0);
  auto crop_len = [](int64_t orig_len, int64_t n_crops, int64_t overlap) {
    const double len =
        static_cast<double>(overlap * (n_crops - 1) + orig_len) / static_cast<double>(n_crops);
    return static_cast<int64_t>(std::ceil(len));
  };
  for (int64_t layer = 0; layer < n_layers; ++layer) {
    const int64_t n_crops = int64_t{1} << (layer + 1);
    // int(overlap_ratio * short_side * (2 / n_crops_per_side)), evaluated left to right.
    const auto overlap = static_cast<int64_t>(overlap_ratio * static_cast<double>(short_side) *
                                              (2.0 / static_cast<double>(n_crops)));
    const int64_t crop_w = crop_len(im_w, n_crops, overlap);
    const int64_t crop_h = crop_len(im_h, n_crops, overlap);
    for (int64_t i = 0; i < n_crops; ++i) {
      const int64_t x0 = (crop_w - overlap) * i;
      for (int64_t j = 0; j < n_crops; ++j) {
        const int64_t y0 = (crop_h - overlap) * j;
        out.boxes.push_back({x0, y0, std::min(x0 + crop_w, im_w), std::min(y0 + crop_h, im_h)});
        out.layer_idxs.push_back(layer + 1);
      }
    }
  }
  return out;
}

torch::Tensor calculate_stability_score(const torch::Tensor& mask_logits, double mask_threshold,
                                        double threshold_offset) {
  TORCH_CHECK(mask_logits.dim() >= 2, "calculate_stability_score: expected (..., H, W), got ",
              mask_logits.sizes());
  // The official sums over W in int16 and over H in int32 (to save memory);
  // we keep the same dtypes so overflow behaves identically.
  auto count = [&](double thr) {
    return (mask_logits > thr).sum(-1, false, torch::kInt16).sum(-1, false, torch::kInt32);
  };
  const auto intersections = count(mask_threshold + threshold_offset);
  const auto unions = count(mask_threshold - threshold_offset);
  return intersections / unions;  // true division: float32
}

torch::Tensor batched_mask_to_box(const torch::Tensor& masks) {
  TORCH_CHECK(masks.dim() >= 2, "batched_mask_to_box: expected (..., H, W), got ", masks.sizes());
  std::vector<int64_t> lead(masks.sizes().begin(), masks.sizes().end() - 2);
  std::vector<int64_t> out_shape = lead;
  out_shape.push_back(4);
  if (masks.numel() == 0) return torch::zeros(out_shape, masks.options().dtype(torch::kInt64));
  const int64_t h = masks.size(-2), w = masks.size(-1);
  const auto m = masks.to(torch::kBool).reshape({-1, h, w});
  auto edges = [](const torch::Tensor& present, int64_t len) {
    // present: (N, len) bool. Returns (first, last) index, last < first when empty.
    const auto idx = torch::arange(len, present.options().dtype(torch::kInt64)).unsqueeze(0);
    const auto last = (present.to(torch::kInt64) * idx).amax(-1);
    const auto first = torch::where(present, idx, torch::full_like(idx, len)).amin(-1);
    return std::make_pair(first, last);
  };
  const auto [top, bottom] = edges(m.any(-1), h);
  const auto [left, right] = edges(m.any(-2), w);
  const auto empty = (right < left) | (bottom < top);
  auto boxes = torch::stack({left, top, right, bottom}, -1);
  boxes = boxes * (~empty).unsqueeze(-1);
  return boxes.reshape(out_shape);
}

torch::Tensor is_box_near_crop_edge(const torch::Tensor& boxes, const Box& crop_box,
                                    const Box& orig_box, double atol) {
  auto as_float = [&](const Box& b) {
    return torch::tensor({static_cast<float>(b[0]), static_cast<float>(b[1]),
                          static_cast<float>(b[2]), static_cast<float>(b[3])},
                         torch::TensorOptions().dtype(torch::kFloat32).device(boxes.device()))
        .unsqueeze(0);
  };
  const auto b = uncrop_boxes_xyxy(boxes, crop_box).to(torch::kFloat32);
  const auto near_crop = torch::isclose(b, as_float(crop_box), 0.0, atol);
  const auto near_image = torch::isclose(b, as_float(orig_box), 0.0, atol);
  return (near_crop & ~near_image).any(1);
}

torch::Tensor uncrop_boxes_xyxy(const torch::Tensor& boxes, const Box& crop_box) {
  auto offset = torch::tensor({crop_box[0], crop_box[1], crop_box[0], crop_box[1]},
                              torch::TensorOptions().dtype(torch::kInt64).device(boxes.device()))
                    .unsqueeze(0);
  if (boxes.dim() == 3) offset = offset.unsqueeze(1);
  return boxes + offset;
}

torch::Tensor uncrop_points(const torch::Tensor& points, const Box& crop_box) {
  auto offset = torch::tensor({crop_box[0], crop_box[1]},
                              torch::TensorOptions().dtype(torch::kInt64).device(points.device()))
                    .unsqueeze(0);
  if (points.dim() == 3) offset = offset.unsqueeze(1);
  return points + offset;
}

torch::Tensor uncrop_masks(const torch::Tensor& masks, const Box& crop_box, int64_t orig_h,
                           int64_t orig_w) {
  const auto [x0, y0, x1, y1] = crop_box;
  if (x0 == 0 && y0 == 0 && x1 == orig_w && y1 == orig_h) return masks;
  const int64_t pad_x = orig_w - (x1 - x0), pad_y = orig_h - (y1 - y0);
  return torch::constant_pad_nd(masks, {x0, pad_x - x0, y0, pad_y - y0}, 0);
}

Box box_xyxy_to_xywh(const Box& b) { return {b[0], b[1], b[2] - b[0], b[3] - b[1]}; }

std::vector<Rle> mask_to_rle(const torch::Tensor& masks) {
  TORCH_CHECK(masks.dim() == 3, "mask_to_rle: expected (B, H, W) masks, got ", masks.sizes());
  const int64_t b = masks.size(0), h = masks.size(1), w = masks.size(2);
  // Fortran order: walk each column top to bottom.
  const auto fortran = masks.to(torch::kCPU, torch::kBool).permute({0, 2, 1}).contiguous();
  const bool* data = fortran.data_ptr<bool>();
  const int64_t n = h * w;
  std::vector<Rle> out(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    const bool* p = data + i * n;
    Rle& rle = out[i];
    rle.h = h;
    rle.w = w;
    bool value = false;  // counts start with a run of zeros
    int64_t run = 0;
    for (int64_t k = 0; k < n; ++k) {
      if (p[k] != value) {
        rle.counts.push_back(run);
        run = 0;
        value = p[k];
      }
      ++run;
    }
    rle.counts.push_back(run);
  }
  return out;
}

torch::Tensor rle_to_mask(const Rle& rle) {
  auto fortran = torch::empty({rle.w, rle.h}, torch::kBool);
  bool* p = fortran.data_ptr<bool>();
  const int64_t n = rle.h * rle.w;
  int64_t idx = 0;
  bool value = false;
  for (const int64_t c : rle.counts) {
    if (c < 0 || idx + c > n)
      throw Error(fmt::format("rle_to_mask: counts exceed size [{}, {}]", rle.h, rle.w));
    std::fill(p + idx, p + idx + c, value);
    idx += c;
    value = !value;
  }
  if (idx != n)
    throw Error(fmt::format("rle_to_mask: counts sum to {}, expected {} for size [{}, {}]", idx, n,
                            rle.h, rle.w));
  return fortran.t().contiguous();
}

int64_t area_from_rle(const Rle& rle) {
  int64_t area = 0;
  for (size_t i = 1; i < rle.counts.size(); i += 2) area += rle.counts[i];
  return area;
}

CocoRle coco_encode_rle(const Rle& rle) {
  CocoRle out{rle.h, rle.w, {}};
  // pycocotools stores counts as uint32 and encodes a signed long difference.
  const auto& c = rle.counts;
  for (size_t i = 0; i < c.size(); ++i) {
    int64_t x = static_cast<int64_t>(static_cast<uint32_t>(c[i]));
    if (i > 2) x -= static_cast<int64_t>(static_cast<uint32_t>(c[i - 2]));
    bool more = true;
    while (more) {
      int64_t chunk = x & 0x1f;
      x >>= 5;  // arithmetic shift, as C's signed long
      more = (chunk & 0x10) ? x != -1 : x != 0;
      if (more) chunk |= 0x20;
      out.counts.push_back(static_cast<char>(chunk + 48));
    }
  }
  return out;
}

Rle coco_decode_rle(const CocoRle& coco) {
  Rle out;
  out.h = coco.h;
  out.w = coco.w;
  const std::string& s = coco.counts;
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int shift = 0;
    bool more = true;
    while (more) {
      if (p >= s.size() || s[p] < 48 || s[p] > 48 + 63 || shift > 60)
        throw Error("coco_decode_rle: malformed counts string '" + s + "'");
      const int64_t chunk = static_cast<int64_t>(s[p]) - 48;
      x |= (chunk & 0x1f) << shift;
      more = (chunk & 0x20) != 0;
      ++p;
      shift += 5;
      if (!more && (chunk & 0x10)) x |= -(int64_t{1} << shift);  // sign-extend
    }
    const size_t i = out.counts.size();
    if (i > 2) x += out.counts[i - 2];
    out.counts.push_back(static_cast<int64_t>(static_cast<uint32_t>(x)));
  }
  return out;
}

std::pair<torch::Tensor, bool> remove_small_regions(const torch::Tensor& mask, double area_thresh,
                                                    RegionMode mode) {
  TORCH_CHECK(mask.dim() == 2, "remove_small_regions: expected an (H, W) mask, got ", mask.sizes());
  const bool holes = mode == RegionMode::holes;
  const auto m = mask.to(torch::kCPU, torch::kBool).contiguous();
  const int64_t h = m.size(0), w = m.size(1);
  // Holes are the connected components of the complement.
  const auto working = (holes ? m.logical_not() : m).to(torch::kUInt8).contiguous();
  cv::Mat work(static_cast<int>(h), static_cast<int>(w), CV_8UC1, working.data_ptr<uint8_t>());
  cv::Mat labels, stats, centroids;
  const int n_labels = cv::connectedComponentsWithStats(work, labels, stats, centroids, 8);
  std::vector<char> small(static_cast<size_t>(n_labels), 0);
  bool any_small = false;
  for (int l = 1; l < n_labels; ++l)
    if (static_cast<double>(stats.at<int>(l, cv::CC_STAT_AREA)) < area_thresh)
      small[l] = any_small = true;
  if (!any_small) return {mask, false};
  // Labels whose pixels become foreground.
  std::vector<char> fill(static_cast<size_t>(n_labels), 0);
  if (holes) {
    fill[0] = 1;
    for (int l = 1; l < n_labels; ++l) fill[l] = small[l];
  } else {
    bool any = false;
    for (int l = 1; l < n_labels; ++l) any |= (fill[l] = !small[l]);
    if (!any) {  // every island is small: keep the largest (first on ties, as np.argmax)
      int best = 1;
      for (int l = 2; l < n_labels; ++l)
        if (stats.at<int>(l, cv::CC_STAT_AREA) > stats.at<int>(best, cv::CC_STAT_AREA)) best = l;
      fill[best] = 1;
    }
  }
  auto out = torch::empty({h, w}, torch::kBool);
  bool* o = out.data_ptr<bool>();
  for (int y = 0; y < labels.rows; ++y) {
    const int* row = labels.ptr<int>(y);
    for (int x = 0; x < labels.cols; ++x) o[static_cast<int64_t>(y) * w + x] = fill[row[x]] != 0;
  }
  return {out.to(mask.device()), true};
}

namespace {

template <typename T>
torch::Tensor nms_impl(const torch::Tensor& boxes, const torch::Tensor& scores,
                       double iou_threshold) {
  const auto b = boxes.contiguous();
  const int64_t n = b.size(0);
  const auto x0 = b.select(1, 0).contiguous(), y0 = b.select(1, 1).contiguous();
  const auto x1 = b.select(1, 2).contiguous(), y1 = b.select(1, 3).contiguous();
  const auto areas_t = (x1 - x0) * (y1 - y0);
  const auto order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const T *px0 = x0.data_ptr<T>(), *py0 = y0.data_ptr<T>(), *px1 = x1.data_ptr<T>(),
          *py1 = y1.data_ptr<T>();
  const T* areas = areas_t.data_ptr<T>();
  const int64_t* order = order_t.data_ptr<int64_t>();
  std::vector<char> suppressed(static_cast<size_t>(n), 0);
  std::vector<int64_t> keep;
  for (int64_t oi = 0; oi < n; ++oi) {
    const int64_t i = order[oi];
    if (suppressed[i]) continue;
    keep.push_back(i);
    for (int64_t oj = oi + 1; oj < n; ++oj) {
      const int64_t j = order[oj];
      if (suppressed[j]) continue;
      const T iw = std::max<T>(T(0), std::min(px1[i], px1[j]) - std::max(px0[i], px0[j]));
      const T ih = std::max<T>(T(0), std::min(py1[i], py1[j]) - std::max(py0[i], py0[j]));
      const T inter = iw * ih;
      const T iou = inter / (areas[i] + areas[j] - inter);
      if (static_cast<double>(iou) > iou_threshold) suppressed[j] = 1;
    }
  }
  return torch::tensor(keep, torch::kInt64).to(boxes.device());
}

}  // namespace

torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "nms: boxes must be (N, 4), got ",
              boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be (",
              boxes.size(0), ",), got ", scores.sizes());
  if (boxes.size(0) == 0) return torch::empty({0}, boxes.options().dtype(torch::kInt64));
  const auto b = boxes.cpu();
  const auto s = scores.cpu();
  if (b.scalar_type() == torch::kFloat64)
    return nms_impl<double>(b, s, iou_threshold).to(boxes.device());
  TORCH_CHECK(b.scalar_type() == torch::kFloat32, "nms: boxes must be float32 or float64, got ",
              b.scalar_type());
  return nms_impl<float>(b, s, iou_threshold).to(boxes.device());
}

torch::Tensor batched_nms(const torch::Tensor& boxes, const torch::Tensor& scores,
                          const torch::Tensor& idxs, double iou_threshold) {
  const int64_t limit = boxes.device().is_cpu() ? 4000 : 20000;
  if (boxes.numel() > limit) {
    auto keep_mask = torch::zeros_like(scores, scores.options().dtype(torch::kBool));
    for (const auto& cls : std::get<0>(at::_unique(idxs, /*sorted=*/true)).unbind(0)) {
      const auto curr = torch::where(idxs == cls)[0];
      const auto curr_keep =
          nms(boxes.index_select(0, curr), scores.index_select(0, curr), iou_threshold);
      keep_mask.index_put_({curr.index_select(0, curr_keep)}, true);
    }
    const auto keep = torch::where(keep_mask)[0];
    return keep.index_select(
        0, std::get<1>(scores.index_select(0, keep).sort(0, /*descending=*/true)));
  }
  if (boxes.numel() == 0) return torch::empty({0}, boxes.options().dtype(torch::kInt64));
  const auto max_coordinate = boxes.max();
  const auto offsets = idxs.to(boxes.options()) * (max_coordinate + 1);
  return nms(boxes + offsets.unsqueeze(1), scores, iou_threshold);
}

}  // namespace samdeblur::sam
