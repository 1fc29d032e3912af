// Train-time sample transforms and sampling; mirrors SAM-Deblur
// basicsr/data/paired_image_group_mask_dataset.py (padding_with_masks,
// paired_random_crop_with_masks, augment_with_masks, remove_zero_slices,
// masks2tensor), paired_image_mask_dataset.py (CAT mask channel),
// transforms.py (paired_random_crop, augment) and data_sampler.py.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <opencv2/core.hpp>

#include <tuple>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/train/train_dataset.h"

namespace samdeblur::train {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform integer in [0, n), unbiased (rejection), identical on every platform
// (std::uniform_int_distribution is implementation-defined).
int64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  for (;;) {
    const uint64_t x = rng();
    if (x < limit) return static_cast<int64_t>(x % n);
  }
}

bool coin(std::mt19937_64& rng) { return (rng() >> 63) != 0; }

// Pad (bottom/right, BORDER_REFLECT), crop, flip, rotate one plane or image.
// `official_rot` selects np.rot90 (counter-clockwise) instead of the transpose.
cv::Mat transform_mat(const cv::Mat& src, const AugmentParams& p, int gt_size, bool official_rot,
                      cv::Mat* dst = nullptr) {
  const int pad_h = std::max(0, gt_size - src.rows), pad_w = std::max(0, gt_size - src.cols);
  cv::Mat padded = src;
  if (pad_h > 0 || pad_w > 0)
    cv::copyMakeBorder(src, padded, 0, pad_h, 0, pad_w, cv::BORDER_REFLECT);
  const cv::Rect roi(static_cast<int>(p.left), static_cast<int>(p.top), gt_size, gt_size);
  if (roi.x < 0 || roi.y < 0 || roi.x + gt_size > padded.cols || roi.y + gt_size > padded.rows)
    throw Error(fmt::format("crop ({}, {}) of size {} lies outside the padded {}x{} image", p.top,
                            p.left, gt_size, padded.rows, padded.cols));
  cv::Mat cur = padded(roi);
  cv::Mat tmp;
  if (p.hflip) {
    cv::flip(cur, tmp, 1);
    cur = tmp;
  }
  if (p.vflip) {
    cv::Mat t2;
    cv::flip(cur, t2, 0);
    cur = t2;
  }
  if (p.rot90) {
    cv::Mat t3;
    if (official_rot)
      cv::rotate(cur, t3, cv::ROTATE_90_COUNTERCLOCKWISE);  // np.rot90(m, axes=(2, 3))
    else
      cv::transpose(cur, t3);  // img.transpose(1, 0, 2)
    cur = t3;
  }
  if (dst) {
    cur.copyTo(*dst);  // dst: a header on preallocated memory of the same size and type
    return *dst;
  }
  return cur.data == src.data ? cur.clone() : (cur.isContinuous() ? cur : cur.clone());
}

}  // namespace

cv::Size padded_size(const cv::Size& size, int64_t gt_size) {
  return {std::max<int>(size.width, static_cast<int>(gt_size)),
          std::max<int>(size.height, static_cast<int>(gt_size))};
}

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t slot) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(epoch));
  return splitmix64(h ^ (static_cast<uint64_t>(slot) * 0xD6E8FEB86659FD93ull));
}

RawSample load_raw_sample(const dataset::SamplePaths& paths, const dataset::DatasetOptions& o) {
  RawSample s;
  s.name = paths.name;
  std::tie(s.lq, s.gt) = dataset::read_pair_bgr(paths);
  const int64_t h = s.gt.rows, w = s.gt.cols;
  if (o.grouped_masks()) {
    torch::Tensor m = io::read_npz_array(paths.mask, "masks", io::NpyExpect{{h, w}});
    if (m.dim() == 4 && m.size(1) == 1) m = m.squeeze(1);
    if (m.dim() != 3)
      throw FileError(paths.mask,
                      fmt::format("'masks' must have shape (M,1,H,W) or (M,H,W), got {}",
                                  fmt::join(m.sizes(), "x")));
    if (m.size(1) != h || m.size(2) != w)
      throw Error(fmt::format("size mismatch: masks in {} are {}x{} but {} is {}x{} (HxW)",
                              paths.mask, m.size(1), m.size(2), paths.gt, h, w));
    s.masks = (m != 0).to(torch::kUInt8).contiguous();
  } else if (o.needs_masks()) {
    s.mask_png = io::read_image_bgr(paths.mask, /*grayscale=*/true);
    if (s.mask_png.size() != s.gt.size())
      throw Error(fmt::format("size mismatch: mask {} is {}x{} but {} is {}x{} (HxW)", paths.mask,
                              s.mask_png.rows, s.mask_png.cols, paths.gt, h, w));
  }
  return s;
}

AugmentParams draw_augment_params(int64_t padded_h, int64_t padded_w, const TrainDatasetOptions& o,
                                  std::mt19937_64& rng) {
  if (padded_h < o.gt_size || padded_w < o.gt_size)
    throw Error(
        fmt::format("padded size {}x{} is smaller than gt_size {}", padded_h, padded_w, o.gt_size));
  AugmentParams p;
  p.top = uniform_below(rng, static_cast<uint64_t>(padded_h - o.gt_size + 1));
  p.left = uniform_below(rng, static_cast<uint64_t>(padded_w - o.gt_size + 1));
  p.hflip = coin(rng) && o.use_flip;
  p.vflip = coin(rng) && o.use_rot;
  p.rot90 = coin(rng) && o.use_rot;
  return p;
}

TrainSample transform_sample(const RawSample& raw, const AugmentParams& p,
                             const TrainDatasetOptions& o) {
  const int gs = static_cast<int>(o.gt_size);
  TrainSample out;
  out.name = raw.name;
  try {
    out.gt = io::image_to_tensor(transform_mat(raw.gt, p, gs, false));
    out.lq = io::image_to_tensor(transform_mat(raw.lq, p, gs, false));
    if (!raw.mask_png.empty())  // CAT: augmented like the image (official augment())
      out.lq =
          torch::cat({out.lq, io::image_to_tensor(transform_mat(raw.mask_png, p, gs, false))}, 0);
    if (raw.masks.defined()) {
      TORCH_CHECK(raw.masks.dim() == 3 && raw.masks.scalar_type() == torch::kUInt8 &&
                      raw.masks.is_contiguous(),
                  "transform_sample: masks must be contiguous (M, H, W) uint8, got ",
                  raw.masks.sizes());
      const int64_t m = raw.masks.size(0);
      const int h = static_cast<int>(raw.masks.size(1)), w = static_cast<int>(raw.masks.size(2));
      auto cropped = torch::empty({m, gs, gs}, torch::kUInt8);
      const bool official = o.mask_rotation == "official";
      for (int64_t k = 0; k < m; ++k) {
        const cv::Mat slice(h, w, CV_8UC1, raw.masks[k].data_ptr<uint8_t>());
        cv::Mat dst(gs, gs, CV_8UC1, cropped[k].data_ptr<uint8_t>());
        transform_mat(slice, p, gs, official, &dst);
      }
      const double value =
          o.base.mask_encoding == dataset::MaskEncoding::official ? 1.0 / 255.0 : 1.0;
      out.masks = models::SegMasks::from_masks(cropped, value);  // drops empty slices
    }
  } catch (const cv::Exception& e) {
    throw Error(fmt::format("{}: OpenCV error while augmenting: {}", raw.name, e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", raw.name, e.what()));
  }
  return out;
}

std::vector<int64_t> epoch_indices(int64_t n, int64_t epoch, int64_t ratio, int64_t rank,
                                   int64_t world, bool shuffle) {
  if (n <= 0 || ratio < 1 || world < 1 || rank < 0 || rank >= world)
    throw Error(fmt::format("epoch_indices: invalid dataset size {}, ratio {}, rank {} of {}", n,
                            ratio, rank, world));
  const int64_t num_samples = (n * ratio + world - 1) / world;  // math.ceil
  const int64_t total = num_samples * world;
  torch::Tensor order;
  if (shuffle) {
    // torch.Generator().manual_seed(epoch); torch.randperm(total, generator=g)
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(epoch));
    order = torch::randperm(total, gen, torch::TensorOptions().dtype(torch::kLong));
  } else {
    order = torch::arange(total, torch::kLong);
  }
  const int64_t* v = order.data_ptr<int64_t>();
  std::vector<int64_t> out;
  out.reserve(num_samples);
  for (int64_t k = rank; k < total; k += world) out.push_back(v[k] % n);
  return out;
}

}  // namespace samdeblur::train
