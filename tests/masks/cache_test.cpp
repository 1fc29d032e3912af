// On-the-fly masks (mask_source): equal to the files sdb-masks writes (offline
// path through dataroot_mask), cached by content and settings, SAM built lazily.
// Uses SLIC superpixels and the tiny random-weight SAM of tests/data/sam/model.
#include "samdeblur/masks/cache.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "samdeblur/core/error.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/superpixels.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::dataset;
using namespace samdeblur::masks;
using dataset::DatasetOptions;

namespace {

const std::string kData = test::data_path("eval");

MaskSourceOptions superpixel_source() {
  MaskSourceOptions m;
  m.type = "superpixels";
  m.superpixels.region_size = 8;  // several superpixels on the ~40 px test images
  return m;
}

// The tiny SAM with loose thresholds (random weights predict low IoU), few prompts.
MaskSourceOptions tiny_sam_source(const std::string& checkpoint) {
  MaskSourceOptions m;
  m.type = "sam";
  m.checkpoint = checkpoint;
  m.model_type = "auto";  // the factory below builds the tiny config
  m.generator.points_per_side = 4;
  m.generator.pred_iou_thresh = 0.0;
  m.generator.stability_score_thresh = 0.0;
  m.generator.output_mode = sam::OutputMode::uncompressed_rle;
  return m;
}

// Counts the predictors built; `fail` makes building one an error (a cache hit must not).
MaskProvider::PredictorFactory tiny_factory(const std::string& checkpoint, int* built,
                                            bool fail = false) {
  return [checkpoint, built, fail]() -> std::unique_ptr<sam::Predictor> {
    ++*built;
    if (fail) throw Error("SAM must not be loaded on a cache hit");
    return sam::make_predictor(test::tiny_sam_config(), checkpoint, torch::kCPU);
  };
}

// Writes the files `sdb-masks --format label-png` and `--format grouped-npz` would
// write for every lq image, with `source`; returns {label dir, grouped dir}.
std::pair<std::string, std::string> write_offline(const fs::path& root, MaskSource& source) {
  const fs::path label = root / "label_png", grouped = root / "grouped_npz";
  for (const auto& e : fs::directory_iterator(kData + "/input")) {
    const cv::Mat bgr = io::read_image_bgr(e.path().string());
    const auto result = source.generate(bgr, e.path().string());
    const std::string stem = e.path().stem().string();
    masks::write_mask_file((label / (stem + ".png")).string(), masks::MaskFileFormat::label_png,
                           result, bgr.rows, bgr.cols);
    masks::write_mask_file((grouped / (stem + ".npz")).string(), masks::MaskFileFormat::grouped_npz,
                           result, bgr.rows, bgr.cols);
  }
  return {label.string(), grouped.string()};
}

void expect_same_masks(const models::SegMasks& a, const models::SegMasks& b, const std::string& n) {
  EXPECT_EQ(a.num_masks, b.num_masks) << n;
  EXPECT_DOUBLE_EQ(a.value, b.value) << n;
  ASSERT_EQ(a.labels.defined(), b.labels.defined()) << n;
  if (a.labels.defined()) {
    EXPECT_TRUE(torch::equal(a.labels, b.labels)) << n;
  }
  ASSERT_EQ(a.dense.defined(), b.dense.defined()) << n;
  if (a.dense.defined()) {
    EXPECT_TRUE(torch::equal(a.dense, b.dense)) << n;
  }
}

// Loads every sample both ways and compares masks (grouped) and the CAT channel.
void expect_on_the_fly_equals_offline(const std::pair<std::string, std::string>& offline,
                                      const MaskSourceOptions& source, MaskProvider& provider) {
  for (const std::string type : {"PairedImageGroupMaskDataset", "PairedImageMaskDataset"}) {
    const bool grouped = type == "PairedImageGroupMaskDataset";
    auto files = test::tiny_dataset_options(type);
    files.dataroot_mask = grouped ? offline.second : offline.first;
    auto fly = test::tiny_dataset_options(type);
    fly.dataroot_mask.clear();
    fly.mask_source = source;
    const auto file_samples = list_samples(files), fly_samples = list_samples(fly);
    ASSERT_EQ(file_samples.size(), 3u);
    ASSERT_EQ(fly_samples.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(fly_samples[i].mask.empty());
      const Sample a = load_sample(file_samples[i], files);
      const Sample b = load_sample(fly_samples[i], fly, &provider);
      EXPECT_TRUE(torch::equal(a.lq, b.lq)) << type << " " << a.name;  // CAT: 4th channel
      if (grouped) {
        ASSERT_TRUE(a.masks && b.masks);
        expect_same_masks(*a.masks, *b.masks, a.name);
      } else {
        EXPECT_EQ(b.lq.size(0), 4);
      }
    }
  }
}

}  // namespace

TEST(MaskProvider, SuperpixelsEqualOfflineFilesAndHitTheCache) {
  const test::TempDir tmp("mask_provider_superpixels");
  const fs::path dir = tmp.path();
  const MaskSourceOptions src = superpixel_source();
  const auto offline = write_offline(
      dir, *masks::make_superpixel_source(src.superpixels, sam::OutputMode::uncompressed_rle));
  const std::string cache = (dir / "cache").string();
  {
    MaskProvider first(src, cache);
    expect_on_the_fly_equals_offline(offline, src, first);
    EXPECT_EQ(first.misses(), 3);  // one per image; the second dataset type hits
    EXPECT_EQ(first.hits(), 3);
  }
  // Layout: <cache>/<key[0:2]>/<key>.png plus a .json description.
  const std::string lq = kData + "/input/img_a.png";
  MaskProvider second(src, cache);
  const std::string key = second.cache_key(lq);
  ASSERT_EQ(key.size(), 64u);
  EXPECT_EQ(second.cache_path(key), (fs::path(cache) / key.substr(0, 2) / (key + ".png")).string());
  EXPECT_TRUE(fs::exists(fs::path(second.cache_path(key)).replace_extension(".json")));
  // A hit reads the cached file and computes nothing: plant a recognisable map.
  const cv::Mat planted(second.label_map(lq).size(), CV_8UC1, cv::Scalar(42));
  io::write_image_atomic(second.cache_path(key), planted);
  EXPECT_EQ(cv::countNonZero(second.label_map(lq) != 42), 0);
  EXPECT_EQ(second.misses(), 0);
  EXPECT_EQ(second.hits(), 2);
  // A changed setting is another key (and so a miss).
  MaskSourceOptions other = src;
  other.superpixels.region_size = 9;
  EXPECT_NE(MaskProvider(other, cache).cache_key(lq), key);
  other = src;
  other.encoding = "exclusive";
  EXPECT_NE(MaskProvider(other, cache).cache_key(lq), key);
  // The key depends on the image bytes, not on its name.
  fs::copy_file(lq, dir / "renamed.png");
  EXPECT_EQ(second.cache_key((dir / "renamed.png").string()), key);
  EXPECT_NE(second.cache_key(kData + "/input/img_b.png"), key);
}

TEST(MaskProvider, ExclusiveEncodingEqualsExclusiveNpz) {
  const test::TempDir tmp("mask_provider_exclusive");
  const fs::path dir = tmp.path();
  MaskSourceOptions src = superpixel_source();
  src.encoding = "exclusive";
  const std::string lq = kData + "/input/img_b.png";
  const cv::Mat bgr = io::read_image_bgr(lq);
  const auto result =
      masks::superpixel_masks(bgr, src.superpixels, sam::OutputMode::uncompressed_rle);
  const std::string file = (dir / "offline.npz").string();
  masks::write_mask_file(file, masks::MaskFileFormat::exclusive_npz, result, bgr.rows, bgr.cols);
  MaskProvider provider(src, (dir / "cache").string());
  const torch::Tensor expected = io::read_npz_array(file, "masks");
  EXPECT_TRUE(torch::equal(provider.grouped_masks(lq), expected));
  EXPECT_TRUE(torch::equal(provider.grouped_masks(lq), expected));  // from the cache
  EXPECT_EQ(provider.misses(), 1);
  EXPECT_EQ(provider.hits(), 1);
  EXPECT_THROW(provider.label_map(lq), Error);  // the CAT channel is always official
}

TEST(MaskProvider, TinySamEqualsOfflineLazyLoadAndCache) {
  if (!fs::exists(test::tiny_sam_checkpoint())) GTEST_SKIP() << "no tiny SAM fixture";
  const test::TempDir tmp("mask_provider_tiny_sam");
  const fs::path dir = tmp.path();
  const std::string ckpt = (dir / "tiny_sam.pth").string();
  fs::copy_file(test::tiny_sam_checkpoint(), ckpt);
  const MaskSourceOptions src = tiny_sam_source(ckpt);

  // Offline: the generator run directly, files written as sdb-masks does.
  auto predictor = sam::make_predictor(test::tiny_sam_config(), ckpt, torch::kCPU);
  sam::MaskGenerator generator(*predictor, src.generator);
  const auto offline = write_offline(dir, *masks::make_sam_source(generator, false, false));
  const cv::Mat some_map = io::read_image_bgr(offline.first + "/img_a.png", true);
  ASSERT_GT(masks::grouped_masks(some_map).size(0), 1) << "the tiny SAM should produce masks";

  const std::string cache = (dir / "cache").string();
  int built = 0;
  {
    MaskProvider first(src, cache, torch::kCPU, tiny_factory(ckpt, &built));
    EXPECT_EQ(built, 0);  // lazily: nothing before the first miss
    EXPECT_FALSE(first.model_loaded());
    expect_on_the_fly_equals_offline(offline, src, first);
    EXPECT_EQ(built, 1);  // once for all images
    EXPECT_EQ(first.misses(), 3);
  }
  // Second run: every image hits, SAM is never built.
  {
    int built2 = 0;
    MaskProvider second(src, cache, torch::kCPU, tiny_factory(ckpt, &built2, /*fail=*/true));
    expect_on_the_fly_equals_offline(offline, src, second);
    EXPECT_EQ(second.hits(), 6);
    EXPECT_EQ(second.misses(), 0);
    EXPECT_EQ(built2, 0);
    EXPECT_FALSE(second.model_loaded());
  }
  const std::string lq = kData + "/input/img_c.png";
  const std::string key = MaskProvider(src, cache).cache_key(lq);
  // A changed generator setting misses the cache and runs SAM.
  {
    MaskSourceOptions changed = src;
    changed.generator.pred_iou_thresh = 0.5;
    int built3 = 0;
    MaskProvider p(changed, cache, torch::kCPU, tiny_factory(ckpt, &built3));
    EXPECT_NE(p.cache_key(lq), key);
    p.label_map(lq);
    EXPECT_EQ(p.misses(), 1);
    EXPECT_EQ(built3, 1);
  }
  // Every setting that shapes the masks is in the key.
  auto key_with = [&](auto&& edit) {
    MaskSourceOptions o = src;
    edit(o);
    return MaskProvider(o, cache).cache_key(lq);
  };
  EXPECT_NE(key_with([](MaskSourceOptions& o) { o.rgb = true; }), key);
  EXPECT_NE(key_with([](MaskSourceOptions& o) { o.model_type = "vit_b"; }), key);
  EXPECT_NE(key_with([](MaskSourceOptions& o) { o.generator.points_per_side = 5; }), key);
  EXPECT_NE(key_with([](MaskSourceOptions& o) { o.generator.min_mask_region_area = 1; }), key);
  EXPECT_NE(key_with([](MaskSourceOptions& o) { o.generator.crop_overlap_ratio = 0.25; }), key);
  EXPECT_NE(key_with([](MaskSourceOptions& o) {
              o.generator.points_per_side.reset();
              o.generator.point_grids = {torch::rand({4, 2}, torch::kFloat64)};
            }),
            key);
  EXPECT_EQ(key_with([](MaskSourceOptions&) {}), key);
  // A different checkpoint file (size or mtime) is another key.
  fs::last_write_time(ckpt, fs::last_write_time(ckpt) + std::chrono::seconds(5));
  EXPECT_NE(MaskProvider(src, cache).cache_key(lq), key);
  // A missing checkpoint is an error naming it.
  fs::remove(ckpt);
  const std::string err = test::error_of<FileError>([&] { MaskProvider p(src, cache); });
  EXPECT_NE(err.find(ckpt), std::string::npos) << err;
}

TEST(MaskProvider, CacheDirDefaultsAndErrors) {
  MaskSourceOptions o = superpixel_source();
  EXPECT_EQ(resolve_mask_cache_dir(o, "results/x"),
            (fs::path("results/x") / "mask_cache").string());
  o.cache_dir = "/tmp/somewhere";
  EXPECT_EQ(resolve_mask_cache_dir(o, "results/x"), "/tmp/somewhere");
  if (const char* home = std::getenv("HOME")) {
    o.cache_dir = "~/.cache/samdeblur/masks";
    EXPECT_EQ(resolve_mask_cache_dir(o, "r"), std::string(home) + "/.cache/samdeblur/masks");
  }
  EXPECT_THROW(MaskProvider(o, ""), Error);
  // Without a provider an on-the-fly dataset cannot load.
  auto ds = test::tiny_dataset_options("PairedImageGroupMaskDataset");
  ds.dataroot_mask.clear();
  ds.mask_source = superpixel_source();
  EXPECT_THROW(load_sample(list_samples(ds)[0], ds, nullptr), Error);
}
