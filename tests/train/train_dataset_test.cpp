// Training data pipeline: official transforms (tests/data/train/augment.npz,
// sampler.npz from scripts/make_train_fixtures.py), alignment of image, target
// and masks under every flip / rotation, determinism across thread counts,
// exact resume, sharding, variable mask counts, error paths. Training data:
// the tiny benchmark in tests/data/eval.
#include "samdeblur/train/train_dataset.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace st = samdeblur::train;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kRegenerate =
    "regenerate with: /usr/bin/python3 scripts/make_train_fixtures.py /tmp/ref/sam-deblur";

const json& meta() {
  static const json j = samdeblur::test::check_fixture_version("train/meta.json", 1, kRegenerate);
  return j;
}

st::TrainDatasetOptions train_options(const std::string& type, int64_t gt_size = 16) {
  st::TrainDatasetOptions o;
  o.base = samdeblur::test::tiny_dataset_options(type);
  o.base.key = "train";
  o.gt_size = gt_size;
  o.batch_size_per_gpu = 2;
  o.num_worker_per_gpu = 1;
  o.dataset_enlarge_ratio = 4;
  o.prefetch = 2;
  return o;
}

// (M, H, W) bool membership of a SegMasks.
torch::Tensor membership(const samdeblur::models::SegMasks& s) {
  if (s.dense.defined()) return s.dense.squeeze(1) > 0;
  return s.labels.unsqueeze(0) == torch::arange(s.num_masks, torch::kLong).view({-1, 1, 1});
}

void expect_same_batches(const st::TrainBatch& a, const st::TrainBatch& b,
                         const std::string& what) {
  EXPECT_EQ(a.names, b.names) << what;
  EXPECT_EQ(a.indices, b.indices) << what;
  EXPECT_EQ(a.epoch, b.epoch) << what;
  EXPECT_EQ(a.position, b.position) << what;
  EXPECT_TRUE(torch::equal(a.lq, b.lq)) << what;
  EXPECT_TRUE(torch::equal(a.gt, b.gt)) << what;
  ASSERT_EQ(a.masks.size(), b.masks.size()) << what;
  for (size_t i = 0; i < a.masks.size(); ++i) {
    EXPECT_EQ(a.masks[i].num_masks, b.masks[i].num_masks) << what;
    EXPECT_TRUE(torch::equal(membership(a.masks[i]), membership(b.masks[i]))) << what;
  }
}

}  // namespace

TEST(TrainTransforms, ReproduceOfficialPipelineForAllFlags) {
  const auto f = samdeblur::test::load_npz_fixture("train/augment.npz", kRegenerate);
  const auto grouped = samdeblur::test::tiny_dataset_options("PairedImageGroupMaskDataset");
  const auto cat = samdeblur::test::tiny_dataset_options("PairedImageMaskDataset");
  const auto paths = samdeblur::dataset::list_samples(grouped)[0];
  const auto cat_paths = samdeblur::dataset::list_samples(cat)[0];
  ASSERT_EQ(paths.name, "img_a");
  const auto raw = st::load_raw_sample(paths, grouped);
  const auto raw_cat = st::load_raw_sample(cat_paths, cat);
  int checked = 0;
  for (const auto& c : meta().at("augment_cases")) {
    const std::string key = c.at("key");
    st::AugmentParams p;
    p.top = c.at("top");
    p.left = c.at("left");
    p.hflip = c.at("hflip");
    p.vflip = c.at("vflip");
    p.rot90 = c.at("rot90");
    st::TrainDatasetOptions o;
    o.base = grouped;
    o.gt_size = c.at("gt_size");
    o.mask_rotation = "official";
    const auto s = st::transform_sample(raw, p, o);
    EXPECT_TRUE(torch::equal(s.gt, f.at(key + "_gt"))) << key;
    EXPECT_TRUE(torch::equal(s.lq, f.at(key + "_lq"))) << key;
    const auto want = f.at(key + "_masks");  // (M', 1, gs, gs), 1/255, empty slices removed
    ASSERT_TRUE(s.masks.has_value());
    ASSERT_EQ(s.masks->num_masks, want.size(0)) << key;
    EXPECT_TRUE(torch::equal(membership(*s.masks), want.squeeze(1) > 0)) << key;
    EXPECT_DOUBLE_EQ(s.masks->value, 1.0 / 255.0);
    EXPECT_FLOAT_EQ(want.max().item<float>(), 1.0f / 255.0f);
    // "correct" rotation: identical unless rotated; then the image's transpose.
    o.mask_rotation = "correct";
    const auto sc = st::transform_sample(raw, p, o);
    if (!p.rot90) {
      EXPECT_TRUE(torch::equal(membership(*sc.masks), membership(*s.masks))) << key;
    } else {
      st::AugmentParams q = p;
      q.rot90 = false;
      const auto unrot = membership(*st::transform_sample(raw, q, o).masks);
      EXPECT_TRUE(torch::equal(membership(*sc.masks), unrot.transpose(1, 2))) << key;
      // and "official" equals np.rot90(axes=(2, 3)) of the unrotated crop
      EXPECT_TRUE(torch::equal(membership(*s.masks), torch::rot90(unrot, 1, {1, 2}))) << key;
    }
    // CAT: the label-map PNG as channel 3, augmented like the image.
    st::TrainDatasetOptions oc = o;
    oc.base = cat;
    const auto sc4 = st::transform_sample(raw_cat, p, oc);
    ASSERT_EQ(sc4.lq.size(0), 4);
    EXPECT_FALSE(sc4.masks.has_value());
    EXPECT_TRUE(torch::equal(sc4.gt, f.at(key + "_cat_gt"))) << key;
    EXPECT_TRUE(torch::equal(sc4.lq.slice(0, 3, 4), f.at(key + "_cat_mask"))) << key;
    EXPECT_TRUE(torch::equal(sc4.lq.slice(0, 0, 3), s.lq)) << key;
    ++checked;
  }
  EXPECT_EQ(checked, 24);
}

TEST(TrainTransforms, ImageTargetAndMasksStayAligned) {
  // gt = lq; mask k = pixels whose blue value is 50 k; CAT map = that blue value.
  const samdeblur::test::TempDir dir("align");
  for (const char* sub : {"gt", "lq", "masks", "png"}) fs::create_directories(dir.path() / sub);
  const int h = 21, w = 27, m = 4;
  torch::manual_seed(3);
  const auto labels = torch::randint(0, m, {h / 3 + 1, w / 3 + 1}, torch::kLong)
                          .repeat_interleave(3, 0)
                          .repeat_interleave(3, 1)
                          .slice(0, 0, h)
                          .slice(1, 0, w)
                          .contiguous();
  cv::Mat img(h, w, CV_8UC3), png(h, w, CV_8UC1);
  const auto rnd = torch::randint(0, 256, {h, w, 2}, torch::kLong);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const auto l = static_cast<uint8_t>(50 * labels[y][x].item<int64_t>());
      img.at<cv::Vec3b>(y, x) = {l, static_cast<uint8_t>(rnd[y][x][0].item<int64_t>()),
                                 static_cast<uint8_t>(rnd[y][x][1].item<int64_t>())};
      png.at<uint8_t>(y, x) = l;
    }
  samdeblur::io::write_image_atomic((dir.path() / "gt" / "s.png").string(), img);
  samdeblur::io::write_image_atomic((dir.path() / "lq" / "s.png").string(), img);
  samdeblur::io::write_image_atomic((dir.path() / "png" / "s.png").string(), png);
  const auto masks = (labels.unsqueeze(0) == torch::arange(m).view({-1, 1, 1})).unsqueeze(1);
  samdeblur::io::write_npz((dir.path() / "masks" / "s.npz").string(), {{"masks", masks}}, true);

  st::TrainDatasetOptions o;
  o.base.name = "align";
  o.base.type = "PairedImageGroupMaskDataset";
  o.base.dataroot_gt = (dir.path() / "gt").string();
  o.base.dataroot_lq = (dir.path() / "lq").string();
  o.base.dataroot_mask = (dir.path() / "masks").string();
  o.base.mask_encoding = samdeblur::dataset::MaskEncoding::clean;
  const auto raw = st::load_raw_sample(samdeblur::dataset::list_samples(o.base)[0], o.base);
  auto cat_base = o.base;
  cat_base.type = "PairedImageMaskDataset";
  cat_base.dataroot_mask = (dir.path() / "png").string();
  const auto raw_cat = st::load_raw_sample(samdeblur::dataset::list_samples(cat_base)[0], cat_base);
  for (int64_t gs : {12, 24}) {  // 24: padded with BORDER_REFLECT first
    o.gt_size = gs;
    for (int flags = 0; flags < 8; ++flags) {
      st::AugmentParams p;
      p.top = gs == 12 ? 5 : 0;
      p.left = gs == 12 ? 9 : 3;
      p.hflip = flags & 1;
      p.vflip = flags & 2;
      p.rot90 = flags & 4;
      for (const std::string rot : {"correct", "official"}) {
        o.mask_rotation = rot;
        const auto s = st::transform_sample(raw, p, o);
        const std::string what = fmt::format("gs {} flags {} {}", gs, flags, rot);
        EXPECT_TRUE(torch::equal(s.lq, s.gt)) << what;
        EXPECT_DOUBLE_EQ(s.masks->value, 1.0);
        // Expected membership from the blue channel (RGB index 2).
        const auto label = (s.lq[2] * 255.0).round().to(torch::kLong) / 50;  // (gs, gs)
        const auto present = std::get<0>(at::_unique(label.flatten()));
        const auto want = label.unsqueeze(0) == present.view({-1, 1, 1});
        const bool aligned = torch::equal(membership(*s.masks), want);
        if (rot == "correct" || !p.rot90) {
          EXPECT_TRUE(aligned) << what;
        } else {
          EXPECT_FALSE(aligned) << what << " (official np.rot90 should misalign masks)";
        }
      }
      auto oc = o;
      oc.base = cat_base;
      const auto c = st::transform_sample(raw_cat, p, oc);
      EXPECT_TRUE(torch::equal(c.lq[3], c.lq[2])) << "CAT gs " << gs << " flags " << flags;
    }
  }
}

TEST(TrainLoader, DeterministicAcrossThreadCounts) {
  auto o = train_options("PairedImageGroupMaskDataset");
  st::TrainLoader one(o, 7);
  o.num_worker_per_gpu = 3;
  o.prefetch = 3;
  st::TrainLoader three(o, 7);
  EXPECT_EQ(one.size(), 6);       // 3 images x 4 / batch 2
  for (int i = 0; i < 14; ++i) {  // crosses two epoch boundaries
    const auto a = one.next(), b = three.next();
    expect_same_batches(a, b, "batch " + std::to_string(i));
    EXPECT_EQ(a.epoch, i / 6);
    EXPECT_EQ(a.position, i % 6);
    ASSERT_EQ(a.masks.size(), 2u);  // one SegMasks per image, counts vary per image
    for (const auto& sm : a.masks) {
      EXPECT_EQ(sm.height(), 16);
      EXPECT_EQ(sm.width(), 16);
    }
    EXPECT_EQ(a.lq.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  }
  // Another seed gives other crops.
  st::TrainLoader other(o, 8);
  EXPECT_FALSE(torch::equal(other.next().lq, one.make_batch(0, 0).lq));
}

TEST(TrainLoader, VariableMaskCountsAcrossTheBatch) {
  auto o = train_options("PairedImageGroupMaskDataset", 32);
  o.batch_size_per_gpu = 3;
  o.dataset_enlarge_ratio = 1;
  st::TrainLoader loader(o, 1);
  const auto b = loader.next();
  std::set<int64_t> counts;
  for (const auto& sm : b.masks) counts.insert(sm.num_masks);
  EXPECT_EQ(b.masks.size(), 3u);
  EXPECT_GE(counts.size(), 2u) << "expected differing mask counts in one batch";
  for (const auto& sm : b.masks) EXPECT_GE(sm.num_masks, 1);
}

TEST(TrainLoader, RestoreResumesExactly) {
  auto o = train_options("PairedImageGroupMaskDataset");
  o.num_worker_per_gpu = 2;
  st::TrainLoader a(o, 11);
  for (int i = 0; i < 5; ++i) a.next();
  const st::LoaderState s = a.state();
  EXPECT_EQ(s.epoch, 0);
  EXPECT_EQ(s.position, 5);
  std::vector<st::TrainBatch> want;
  for (int i = 0; i < 4; ++i) want.push_back(a.next());
  o.num_worker_per_gpu = 1;
  st::TrainLoader b(o, 11);
  b.next();  // some prepared batches to throw away
  b.restore(s);
  EXPECT_EQ(b.state().epoch, s.epoch);
  EXPECT_EQ(b.state().position, s.position);
  for (int i = 0; i < 4; ++i)
    expect_same_batches(b.next(), want[i], "resumed " + std::to_string(i));
  a.restore(s);  // rewinding works too
  expect_same_batches(a.next(), want[0], "rewound");
  st::LoaderState bad = s;
  bad.seed = 12;
  EXPECT_THROW(a.restore(bad), samdeblur::Error);
}

TEST(TrainSampler, MatchesOfficialEnlargedSampler) {
  const auto f = samdeblur::test::load_npz_fixture("train/sampler.npz", kRegenerate);
  int checked = 0;
  for (const auto& key : meta().at("sampler_keys")) {
    int n, r, w, k, e;
    ASSERT_EQ(
        std::sscanf(key.get<std::string>().c_str(), "n%d_r%d_w%d_k%d_e%d", &n, &r, &w, &k, &e), 5);
    const auto got = st::epoch_indices(n, e, r, k, w);
    const auto want = f.at(key.get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(got.size()), want.size(0)) << key;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i].item<int64_t>()) << key;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST(TrainSampler, ShardingCoversTheDataset) {
  for (int64_t world : {1, 2, 3}) {
    std::multiset<int64_t> all;
    for (int64_t rank = 0; rank < world; ++rank) {
      const auto v = st::epoch_indices(7, 2, 3, rank, world);
      EXPECT_EQ(static_cast<int64_t>(v.size()), (7 * 3 + world - 1) / world);
      all.insert(v.begin(), v.end());
    }
    for (int64_t i = 0; i < 7; ++i) EXPECT_GE(all.count(i), 3u) << "world " << world;
    EXPECT_EQ(static_cast<int64_t>(all.size()), ((21 + world - 1) / world) * world);
  }
  // Loaders on two ranks see disjoint slots that together cover every image.
  auto o = train_options("PairedImageDataset");
  o.dataset_enlarge_ratio = 2;
  o.batch_size_per_gpu = 3;
  st::TrainLoader r0(o, 5, 0, 2), r1(o, 5, 1, 2);
  EXPECT_EQ(r0.size(), 1);
  std::multiset<int64_t> seen;
  for (auto* l : {&r0, &r1}) {
    const auto b = l->next();
    EXPECT_TRUE(b.masks.empty());
    seen.insert(b.indices.begin(), b.indices.end());
  }
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(seen.count(i), 2u);
  // No shuffle: enlarged list in order.
  EXPECT_EQ(st::epoch_indices(3, 4, 2, 1, 2, false), (std::vector<int64_t>{1, 0, 2}));
}

TEST(TrainLoader, CatVariantHasFourChannels) {
  auto o = train_options("PairedImageMaskDataset");
  o.num_worker_per_gpu = 2;
  st::TrainLoader loader(o, 3);
  const auto b = loader.next();
  EXPECT_EQ(b.lq.sizes(), (std::vector<int64_t>{2, 4, 16, 16}));
  EXPECT_EQ(b.gt.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));
  EXPECT_TRUE(b.masks.empty());
}

TEST(TrainLoader, ErrorsNameTheFile) {
  const samdeblur::test::TempDir dir("err");
  for (const char* sub : {"gt", "lq"}) fs::create_directories(dir.path() / sub);
  samdeblur::io::write_image_atomic((dir.path() / "gt" / "a.png").string(),
                                    cv::Mat(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)));
  samdeblur::io::write_image_atomic((dir.path() / "lq" / "a.png").string(),
                                    cv::Mat(20, 22, CV_8UC3, cv::Scalar(1, 2, 3)));
  samdeblur::io::write_image_atomic((dir.path() / "gt" / "b.png").string(),
                                    cv::Mat(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)));
  samdeblur::test::write_text(dir / "lq" / "b.png", "not a png");
  st::TrainDatasetOptions o;
  o.base.name = "err";
  o.base.type = "PairedImageDataset";
  o.base.dataroot_gt = (dir.path() / "gt").string();
  o.base.dataroot_lq = (dir.path() / "lq").string();
  o.gt_size = 8;
  o.batch_size_per_gpu = 1;
  o.use_shuffle = false;
  st::TrainLoader loader(o, 0);
  const std::string err = samdeblur::test::error_of([&] { loader.next(); });
  EXPECT_NE(err.find("a.png"), std::string::npos) << err;
  EXPECT_NE(err.find("size mismatch"), std::string::npos) << err;
  EXPECT_THROW(loader.next(), samdeblur::Error);  // the failing batch fails again
  loader.restore({0, 1, 0});
  try {
    loader.next();
    FAIL() << "corrupt file not reported";
  } catch (const samdeblur::FileError& e) {
    EXPECT_NE(e.path().find("b.png"), std::string::npos) << e.what();
  }
  o.batch_size_per_gpu = 3;
  EXPECT_THROW(st::TrainLoader(o, 0), samdeblur::Error);  // 2 images < batch size
  o.batch_size_per_gpu = 1;
  o.mask_rotation = "ccw";
  EXPECT_THROW(st::TrainLoader(o, 0), samdeblur::ConfigError);
}
