// The demo dataset builder and sdb-synth: layout, names, determinism, masks,
// errors; end to end on the committed photos (data/demo/photos).
#include "samdeblur/synth/demo_dataset.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/encodings.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::synth;
using test::read_text;

namespace {

cv::Mat photo(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x * 5 + seed * 40) % 256),
                                        static_cast<uint8_t>(((x / 6 + y / 6) % 2) * 200 + 20),
                                        static_cast<uint8_t>((y * 7 + seed * 13) % 256));
  cv::circle(m, {w / 3, h / 2}, std::min(h, w) / 5, cv::Scalar(30, 240, 90), cv::FILLED);
  return m;
}

DemoDatasetOptions small_options(const fs::path& photos, const fs::path& out) {
  DemoDatasetOptions o;
  o.photos = photos.string();
  o.output_dir = out.string();
  o.train_per_photo = 2;
  o.test_per_photo = 1;
  o.train_crop = 32;
  o.test_crop = 48;
  o.trajectory.frames = 5;
  o.trajectory.max_shift = 4;
  o.superpixels.region_size = 12;
  o.progress = false;
  return o;
}

std::set<std::string> stems(const fs::path& dir, const std::string& ext) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().extension().string(), ext) << e.path();
    out.insert(e.path().stem().string());
  }
  return out;
}

std::vector<fs::path> all_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir));
  std::sort(out.begin(), out.end());
  return out;
}

// Checks one split's layout and contents against the photos and the manifest.
void check_split(const fs::path& out, const std::string& split, int expected, int crop,
                 const std::map<std::string, cv::Mat>& photos, const nlohmann::json& manifest) {
  SCOPED_TRACE(split);
  const fs::path dir = out / split;
  const auto names = stems(dir / "input", ".png");
  ASSERT_EQ(static_cast<int>(names.size()), expected);
  EXPECT_EQ(stems(dir / "target", ".png"), names);
  EXPECT_EQ(stems(dir / "input_mask", ".png"), names);
  EXPECT_EQ(stems(dir / "grouped_masks", ".npz"), names);
  int checked = 0;
  for (const auto& rec : manifest["samples"]) {
    if (rec["split"] != split) continue;
    const std::string name = rec["name"].get<std::string>();
    SCOPED_TRACE(name);
    ASSERT_TRUE(names.count(name));
    ++checked;
    const cv::Mat input = io::read_image_bgr((dir / "input" / (name + ".png")).string());
    const cv::Mat target = io::read_image_bgr((dir / "target" / (name + ".png")).string());
    ASSERT_EQ(input.size(), cv::Size(crop, crop));
    ASSERT_EQ(target.size(), cv::Size(crop, crop));
    // The target is exactly the recorded crop of the photo (the middle frame).
    const cv::Mat& ph = photos.at(rec["photo"].get<std::string>());
    const cv::Rect r(rec["x"].get<int>(), rec["y"].get<int>(), crop, crop);
    EXPECT_EQ(cv::norm(target, ph(r), cv::NORM_INF), 0);
    EXPECT_GT(cv::norm(input, target, cv::NORM_L1), 0) << "input not blurred";
    // Masks: the label map and the grouped masks agree and partition the image.
    const cv::Mat map = io::read_image_bgr((dir / "input_mask" / (name + ".png")).string(), true);
    ASSERT_EQ(map.size(), cv::Size(crop, crop));
    const auto masks =
        io::read_npz_array((dir / "grouped_masks" / (name + ".npz")).string(), "masks");
    ASSERT_EQ(masks.dim(), 4);
    ASSERT_EQ(masks.scalar_type(), torch::kBool);
    EXPECT_EQ(masks.size(1), 1);
    EXPECT_EQ(masks.size(2), crop);
    EXPECT_EQ(masks.size(3), crop);
    EXPECT_TRUE(masks.sum(0).eq(1).all().item<bool>()) << "grouped masks do not partition";
    EXPECT_TRUE(torch::equal(masks, masks::grouped_masks(map)));
    EXPECT_EQ(masks.size(0), rec["superpixels"].get<int64_t>());
    EXPECT_GT(masks.size(0), 1);
  }
  EXPECT_EQ(checked, expected);
}

}  // namespace

TEST(DemoDataset, LayoutNamesMasksAndTargets) {
  const test::TempDir tmp("synth");
  const fs::path photos = tmp.path() / "photos";
  fs::create_directories(photos);
  std::map<std::string, cv::Mat> images = {{"b.png", photo(70, 90, 1)},
                                           {"a.png", photo(64, 64, 0)}};
  for (const auto& [name, img] : images) cv::imwrite((photos / name).string(), img);
  write_file_atomic((photos / "README.txt").string(), "not a photo");  // ignored with a warning
  const auto o = small_options(photos, tmp.path() / "out");
  const auto summary = build_demo_dataset(o);
  ASSERT_EQ(summary.samples.size(), 6u);
  // Train first, photos sorted, k ascending.
  EXPECT_EQ(summary.samples[0].name, "a_000");
  EXPECT_EQ(summary.samples[3].name, "b_001");
  EXPECT_EQ(summary.samples[4].split, "test");
  EXPECT_EQ(summary.samples[4].name, "a_000");
  const auto manifest = nlohmann::json::parse(read_text(tmp.path() / "out" / "manifest.json"));
  EXPECT_EQ(manifest["samples"].size(), 6u);
  EXPECT_EQ(manifest["options"]["trajectory"]["frames"], 5);
  check_split(tmp.path() / "out", "train", 4, 32, images, manifest);
  check_split(tmp.path() / "out", "test", 2, 48, images, manifest);
  for (const auto& f : all_files(tmp.path() / "out"))
    EXPECT_EQ(f.string().find(".tmp"), std::string::npos) << f;
  // Rerunning with the same options is fine; with fewer samples it would leave
  // files the manifest does not list: an error naming the folder, nothing written.
  EXPECT_NO_THROW(build_demo_dataset(o));
  auto fewer = o;
  fewer.train_per_photo = 1;
  try {
    build_demo_dataset(fewer);
    FAIL() << "stale files accepted";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("train/grouped_masks/a_001.npz"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(
      nlohmann::json::parse(read_text(tmp.path() / "out" / "manifest.json"))["samples"].size(), 6u);
}

TEST(DemoDataset, SameSeedSameBytesOtherSeedOtherBlur) {
  const test::TempDir tmp("synth");
  const fs::path photos = tmp.path() / "photos";
  fs::create_directories(photos);
  cv::imwrite((photos / "p.png").string(), photo(60, 80, 2));
  cv::imwrite((photos / "q.png").string(), photo(64, 64, 3));
  auto o = small_options(photos, tmp.path() / "a");
  build_demo_dataset(o);
  o.output_dir = (tmp.path() / "b").string();
  build_demo_dataset(o);
  const auto files = all_files(tmp.path() / "a");
  ASSERT_EQ(files, all_files(tmp.path() / "b"));
  ASSERT_EQ(files.size(), 6u * 4 + 1);
  for (const auto& f : files)
    EXPECT_EQ(read_file_bytes((tmp.path() / "a" / f).string()),
              read_file_bytes((tmp.path() / "b" / f).string()))
        << f;
  // Another seed: other crops / trajectories.
  o.output_dir = (tmp.path() / "c").string();
  o.seed = 1;
  build_demo_dataset(o);
  EXPECT_NE(read_file_bytes((tmp.path() / "a" / "train" / "input" / "p_000.png").string()),
            read_file_bytes((tmp.path() / "c" / "train" / "input" / "p_000.png").string()));
  // Adding a photo leaves the other photos' samples unchanged.
  cv::imwrite((photos / "o.png").string(), photo(64, 64, 4));
  o.output_dir = (tmp.path() / "d").string();
  o.seed = 0;
  build_demo_dataset(o);
  EXPECT_EQ(read_file_bytes((tmp.path() / "a" / "test" / "input" / "q_000.png").string()),
            read_file_bytes((tmp.path() / "d" / "test" / "input" / "q_000.png").string()));
  // The seed mixing is stable across platforms and builds (a change here
  // changes every generated demo dataset).
  EXPECT_NE(sample_seed(0, "p", "train", 0), sample_seed(0, "p", "test", 0));
  EXPECT_NE(sample_seed(0, "p", "train", 0), sample_seed(0, "q", "train", 0));
  EXPECT_EQ(sample_name("astronaut", 7), "astronaut_007");
}

TEST(DemoDataset, ErrorsNameTheFile) {
  const test::TempDir tmp("synth");
  const fs::path photos = tmp.path() / "photos";
  fs::create_directories(photos);
  cv::imwrite((photos / "small.png").string(), photo(40, 100, 0));
  auto o = small_options(photos, tmp.path() / "out");
  try {
    build_demo_dataset(o);  // 40 rows < the 48x48 test crop
    FAIL() << "a photo smaller than the crop was accepted";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("small.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("48x48 test crop"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "manifest.json"));
  o.test_per_photo = 0;  // no test crops: the 32x32 train crops fit
  EXPECT_NO_THROW(build_demo_dataset(o));
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "test"));
  // Two photos with the same stem would write the same sample names.
  cv::imwrite((photos / "small.jpg").string(), photo(40, 100, 0));
  EXPECT_THROW(build_demo_dataset(o), FileError);
  fs::remove(photos / "small.jpg");
  // Unreadable photo, missing folder, bad options.
  write_file_atomic((photos / "broken.png").string(), "not a png");
  try {
    build_demo_dataset(o);
    FAIL() << "a broken photo was accepted";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
  o.photos = (tmp.path() / "missing").string();
  EXPECT_THROW(build_demo_dataset(o), FileError);
  o.photos = photos.string();
  o.train_per_photo = -1;
  EXPECT_THROW(build_demo_dataset(o), ConfigError);
}

TEST(SdbSynth, EndToEndOnTheCommittedPhotos) {
  if (!test::app_built("sdb-synth"))
    GTEST_SKIP() << "sdb-synth not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const fs::path photos = test::source_path("data/demo/photos");
  const test::TempDir tmp("synth");
  auto run = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"-q"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = test::run_app("sdb-synth", argv);
    return std::make_pair(r.exit_code, r.output());
  };
  // Default crops (192 train, 256 test) must fit every committed photo.
  auto [code, log] = run({"--photos", photos.string(), "--output", (tmp.path() / "o").string(),
                          "--train-per-photo", "1", "--test-per-photo", "1", "--frames", "7"});
  ASSERT_EQ(code, 0) << log;
  size_t n_photos = 0;
  for (const auto& e : fs::directory_iterator(photos)) n_photos += e.path().extension() == ".jpg";
  ASSERT_GE(n_photos, 4u);
  for (const char* split : {"train", "test"})
    for (const char* sub : {"input", "target", "input_mask", "grouped_masks"})
      EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path() / "o" / split / sub),
                              fs::directory_iterator{}),
                static_cast<long>(n_photos))
          << split << "/" << sub;
  const cv::Mat in =
      io::read_image_bgr((tmp.path() / "o" / "test" / "input" / "astronaut_000.png").string());
  EXPECT_EQ(in.size(), cv::Size(256, 256));
  const auto manifest = nlohmann::json::parse(read_text(tmp.path() / "o" / "manifest.json"));
  EXPECT_EQ(manifest["samples"].size(), 2 * n_photos);
  // Errors: non-zero exit, the message names the path.
  std::tie(code, log) = run(
      {"--photos", (tmp.path() / "nowhere").string(), "--output", (tmp.path() / "o2").string()});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("nowhere"), std::string::npos) << log;
  std::tie(code, log) =
      run({"--photos", photos.string(), "--output", (tmp.path() / "o3").string(), "--frames", "4"});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("trajectory.frames"), std::string::npos) << log;
}
