// sdb-prepare's library (samdeblur::prepare) on small synthetic trees laid out like
// the published archives: names, counts, pairing errors, refusal of files that do not
// decode completely, resume, manifest; and the app end to end.
#include "samdeblur/prepare/prepare.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "../support/test_support.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/sha256.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::prepare;
using samdeblur::test::error_of;
using samdeblur::test::TempDir;

namespace {

// A small random colour image written with OpenCV's defaults for the extension.
void write_image(const fs::path& path, int h = 12, int w = 16, uint64_t seed = 1) {
  fs::create_directories(path.parent_path());
  cv::Mat img(h, w, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(img, cv::RNG::UNIFORM, 0, 256);
  ASSERT_TRUE(cv::imwrite(path.string(), img)) << path;
}

std::vector<unsigned char> bytes_of(const fs::path& p) { return read_file_bytes(p.string()); }

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

// GOPRO_Large/<split>/<seq>/{blur,blur_gamma,sharp}/<frame>.png
void make_gopro(const fs::path& root, const std::string& split,
                const std::vector<std::string>& seqs, int frames) {
  uint64_t seed = 1;
  for (const auto& seq : seqs) {
    for (int f = 0; f < frames; ++f) {
      const auto name = fmt::format("{:06d}.png", 47 + f);
      write_image(root / "GOPRO_Large" / split / seq / "blur" / name, 12, 16, seed++);
      write_image(root / "GOPRO_Large" / split / seq / "blur_gamma" / name, 12, 16, seed++);
      write_image(root / "GOPRO_Large" / split / seq / "sharp" / name, 12, 16, seed++);
    }
  }
}

PrepareOptions opts(const fs::path& source, const fs::path& output, int64_t expect,
                    const std::string& split = "") {
  PrepareOptions o;
  o.source = source.string();
  o.output = output.string();
  o.split = split;
  o.expected_pairs = expect;
  return o;
}

// A PNG whose IDAT chunk's CRC is wrong.
void corrupt_png_crc(const fs::path& path) {
  auto bytes = bytes_of(path);
  const std::string data(bytes.begin(), bytes.end());
  const auto idat = data.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t len = (uint32_t(bytes[idat - 4]) << 24) | (uint32_t(bytes[idat - 3]) << 16) |
                       (uint32_t(bytes[idat - 2]) << 8) | uint32_t(bytes[idat - 1]);
  bytes[idat + 4 + len] ^= 0xFF;  // first CRC byte
  write_file_atomic(path.string(), bytes.data(), bytes.size());
}

bool decodes(const fs::path& p) {
  try {
    io::read_image_bgr(p.string());
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

TEST(PrepareCropGrid, MatchesCropGoproWorker) {
  // GoPro frames are 1280 x 720: rows 0, 208 (the last partial row is shifted in),
  // columns 0, 256, 512, 768 (768 + 512 = 1280 exactly: no extra column).
  EXPECT_EQ(crop_grid(720), (std::vector<int>{0, 208}));
  EXPECT_EQ(crop_grid(1280), (std::vector<int>{0, 256, 512, 768}));
  EXPECT_EQ(crop_grid(512), (std::vector<int>{0}));
  EXPECT_EQ(crop_grid(513), (std::vector<int>{0, 1}));
  EXPECT_EQ(crop_grid(600, 512, 256, 100), (std::vector<int>{0}));  // 88 left <= thresh
  EXPECT_EQ(crop_grid(700, 512, 256, 100), (std::vector<int>{0, 188}));
  EXPECT_NE(error_of([] { crop_grid(500); }).find("500"), std::string::npos);
}

TEST(PrepareDatasets, NamesAndPublishedCounts) {
  std::vector<std::string> names;
  for (const auto& d : datasets()) names.push_back(d.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"gopro", "gopro-crops", "realblur-j", "reds", "reloblur"}));
  EXPECT_EQ(datasets()[0].train_pairs, 2103);
  EXPECT_EQ(datasets()[0].test_pairs, 1111);
  EXPECT_EQ(datasets()[2].test_pairs, 980);
  EXPECT_EQ(datasets()[3].test_pairs, 3000);
  EXPECT_EQ(datasets()[4].test_pairs, 395);
  TempDir t("prep");
  const auto msg = error_of([&] { prepare_dataset("gorpo", opts(t.path(), t / "out", 0)); });
  EXPECT_NE(msg.find("gopro, gopro-crops, realblur-j, reds, reloblur"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] {
              prepare_dataset("gopro", opts(t.path(), t / "out", 0, "val"));
            }).find("'val'"),
            std::string::npos);
}

TEST(PrepareGopro, NamesBytesManifestAndCount) {
  TempDir t("prep");
  make_gopro(t / "src", "test", {"GOPR0384_11_00", "GOPR0385_11_01"}, 2);
  // The published count (1111) is checked unless told otherwise.
  const auto msg = error_of([&] { prepare_dataset("gopro", opts(t / "src", t / "out", -1)); });
  EXPECT_NE(msg.find("expected 1111 pairs, found 4"), std::string::npos) << msg;

  const auto s = prepare_dataset("gopro", opts(t / "src", t / "out", 4));
  EXPECT_EQ(s.pairs, 4);
  EXPECT_EQ(s.split, "test");
  EXPECT_EQ(s.skipped_pairs, 0);
  const fs::path out = t / "out" / "test";
  EXPECT_EQ(bytes_of(out / "input" / "GOPR0384_11_00-000047.png"),
            bytes_of(t / "src/GOPRO_Large/test/GOPR0384_11_00/blur/000047.png"));
  EXPECT_EQ(bytes_of(out / "target" / "GOPR0385_11_01-000048.png"),
            bytes_of(t / "src/GOPRO_Large/test/GOPR0385_11_01/sharp/000048.png"));
  const auto m = read_json(out / "manifest.json");
  EXPECT_EQ(m["dataset"], "gopro");
  EXPECT_EQ(m["pairs"], 4);
  ASSERT_EQ(m["files"].size(), 8u);
  EXPECT_EQ(m["files"][0]["path"], "input/GOPR0384_11_00-000047.png");
  for (const auto& f : m["files"]) {
    const auto p = out / f["path"].get<std::string>();
    EXPECT_EQ(f["size"].get<int64_t>(), static_cast<int64_t>(fs::file_size(p)));
    EXPECT_EQ(f["sha256"], masks::sha256_file_hex(p.string()));
  }
  EXPECT_FALSE(fs::exists(out / "manifest.json.partial.tsv"));
}

TEST(PrepareGopro, MissingPartnerIsNamed) {
  TempDir t("prep");
  make_gopro(t / "src", "train", {"GOPR0372_07_00"}, 2);
  fs::remove(t / "src/GOPRO_Large/train/GOPR0372_07_00/sharp/000048.png");
  auto msg = error_of([&] { prepare_dataset("gopro", opts(t / "src", t / "out", 0, "train")); });
  EXPECT_NE(msg.find("GOPR0372_07_00/sharp/000048.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing partner"), std::string::npos) << msg;
  // A sharp frame without its blurry frame is named too.
  make_gopro(t / "src2", "train", {"GOPR0372_07_00"}, 2);
  fs::remove(t / "src2/GOPRO_Large/train/GOPR0372_07_00/blur/000047.png");
  msg = error_of([&] { prepare_dataset("gopro", opts(t / "src2", t / "out", 0, "train")); });
  EXPECT_NE(msg.find("GOPR0372_07_00/blur/000047.png"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(t / "out/train/manifest.json"));
}

TEST(PrepareGopro, SizeMismatchIsNamed) {
  TempDir t("prep");
  make_gopro(t / "src", "test", {"GOPR0384_11_00"}, 1);
  write_image(t / "src/GOPRO_Large/test/GOPR0384_11_00/sharp/000047.png", 10, 16);
  const auto msg = error_of([&] { prepare_dataset("gopro", opts(t / "src", t / "out", 0)); });
  EXPECT_NE(msg.find("blur/000047.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("16x10"), std::string::npos) << msg;
}

TEST(PrepareGopro, ResumesAnInterruptedRun) {
  TempDir t("prep");
  make_gopro(t / "src", "test", {"GOPR0384_11_00", "GOPR0385_11_01"}, 2);
  // Break one source: the run stops there, after recording the pairs before it.
  const fs::path bad = t / "src/GOPRO_Large/test/GOPR0385_11_01/blur/000048.png";
  const auto good = bytes_of(bad);
  write_file_atomic(bad.string(), "not an image");
  const auto msg = error_of([&] { prepare_dataset("gopro", opts(t / "src", t / "out", 4)); });
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(t / "out/test/manifest.json"));
  EXPECT_TRUE(fs::exists(t / "out/test/manifest.json.partial.tsv"));
  // Repaired: the rerun skips the three recorded pairs and completes.
  write_file_atomic(bad.string(), good.data(), good.size());
  auto s = prepare_dataset("gopro", opts(t / "src", t / "out", 4));
  EXPECT_EQ(s.skipped_pairs, 3);
  EXPECT_TRUE(fs::exists(t / "out/test/manifest.json"));
  // A complete tree reruns as a no-op; a damaged output file is rewritten.
  write_file_atomic((t / "out/test/target/GOPR0384_11_00-000047.png").string(), "x");
  s = prepare_dataset("gopro", opts(t / "src", t / "out", 4));
  EXPECT_EQ(s.skipped_pairs, 3);
  EXPECT_EQ(bytes_of(t / "out/test/target/GOPR0384_11_00-000047.png"),
            bytes_of(t / "src/GOPRO_Large/test/GOPR0384_11_00/sharp/000047.png"));
  EXPECT_EQ(read_json(t / "out/test/manifest.json")["files"].size(), 8u);
}

TEST(PrepareGopro, RefusesPngWithBadCrc) {
  TempDir t("prep");
  make_gopro(t / "src", "test", {"GOPR0384_11_00"}, 1);
  const fs::path bad = t / "src/GOPRO_Large/test/GOPR0384_11_00/sharp/000047.png";
  corrupt_png_crc(bad);
  if (decodes(bad)) GTEST_SKIP() << "needs strict decoding (io::read_image_bgr accepts a bad CRC)";
  const auto msg = error_of([&] { prepare_dataset("gopro", opts(t / "src", t / "out", 0)); });
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
}

TEST(PrepareRealBlurJ, NamesFromTheOfficialList) {
  TempDir t("prep");
  const std::string root = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref";
  std::ofstream list(t / "RealBlur_J_test_list.txt");
  int seed = 1;
  for (const std::string scene : {"scene230", "scene231"}) {
    for (int k : {1, 2}) {
      const auto gt = fmt::format("{}/{}/gt/gt_{}.png", root, scene, k);
      const auto blur = fmt::format("{}/{}/blur/blur_{}.png", root, scene, k);
      write_image(t / gt, 12, 16, seed++);
      write_image(t / blur, 12, 16, seed++);
      list << gt << " " << blur << "\n";
    }
  }
  list.close();
  const auto s = prepare_dataset("realblur-j", opts(t.path(), t / "out", 4));
  EXPECT_EQ(s.pairs, 4);
  EXPECT_EQ(bytes_of(t / "out/test/input/RealBlur-J-scene231-gt_2.png"),
            bytes_of(t / root / "scene231/blur/blur_2.png"));
  EXPECT_EQ(bytes_of(t / "out/test/target/RealBlur-J-scene230-gt_1.png"),
            bytes_of(t / root / "scene230/gt/gt_1.png"));
  EXPECT_NE(error_of([&] {
              prepare_dataset("realblur-j", opts(t.path(), t / "out", -1));
            }).find("expected 980 pairs, found 4"),
            std::string::npos);
  // A listed file that is missing is named.
  fs::remove(t / root / "scene230/blur/blur_2.png");
  const auto msg = error_of([&] { prepare_dataset("realblur-j", opts(t.path(), t / "out2", 0)); });
  EXPECT_NE(msg.find("scene230/blur/blur_2.png"), std::string::npos) << msg;
  // No train list: the missing list is named.
  EXPECT_NE(error_of([&] {
              prepare_dataset("realblur-j", opts(t.path(), t / "out2", 0, "train"));
            }).find("RealBlur_J_train_list.txt"),
            std::string::npos);
}

TEST(PrepareReds, ValidationSetJpegInputs) {
  TempDir t("prep");
  int seed = 1;
  for (const std::string seq : {"000", "001"}) {
    for (int f = 0; f < 2; ++f) {
      write_image(t / "val/val_blur_jpeg" / seq / fmt::format("{:08d}.jpg", f), 12, 16, seed++);
      write_image(t / "val/val_sharp" / seq / fmt::format("{:08d}.png", f), 12, 16, seed++);
    }
  }
  const auto s = prepare_dataset("reds", opts(t.path(), t / "out", 4));
  EXPECT_EQ(s.split, "val");  // configs/test/REDS read datasets/REDS/val/{input,target}
  EXPECT_EQ(bytes_of(t / "out/val/input/001_00000001.jpg"),
            bytes_of(t / "val/val_blur_jpeg/001/00000001.jpg"));
  EXPECT_EQ(bytes_of(t / "out/val/target/000_00000000.png"),
            bytes_of(t / "val/val_sharp/000/00000000.png"));
  EXPECT_EQ(read_json(t / "out/val/manifest.json")["files"].size(), 8u);
  EXPECT_NE(error_of([&] {
              prepare_dataset("reds", opts(t.path(), t / "out", -1));
            }).find("expected 3000 pairs, found 4"),
            std::string::npos);
  fs::remove(t / "val/val_sharp/001/00000000.png");
  const auto msg = error_of([&] { prepare_dataset("reds", opts(t.path(), t / "out3", 0)); });
  EXPECT_NE(msg.find("val_sharp/001/00000000.png"), std::string::npos) << msg;
}

TEST(PrepareReds, RefusesTruncatedJpeg) {
  TempDir t("prep");
  write_image(t / "val/val_blur_jpeg/000/00000000.jpg", 64, 64);
  write_image(t / "val/val_sharp/000/00000000.png", 64, 64);
  const fs::path bad = t / "val/val_blur_jpeg/000/00000000.jpg";
  auto bytes = bytes_of(bad);
  bytes.resize(bytes.size() / 2);
  write_file_atomic(bad.string(), bytes.data(), bytes.size());
  if (decodes(bad)) GTEST_SKIP() << "needs strict decoding (a truncated JPEG only warns)";
  const auto msg = error_of([&] { prepare_dataset("reds", opts(t.path(), t / "out", 0)); });
  EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
}

TEST(PrepareReloBlur, SceneSequenceFrameNames) {
  TempDir t("prep");
  int seed = 1;
  for (const std::string scene : {"s01", "s02"}) {
    write_image(t / "test" / scene / "00" / "00_blur.png", 12, 16, seed++);
    write_image(t / "test" / scene / "00" / "00_sharp.png", 12, 16, seed++);
  }
  const auto s = prepare_dataset("reloblur", opts(t.path(), t / "out", 2));
  EXPECT_EQ(s.pairs, 2);
  EXPECT_EQ(bytes_of(t / "out/test/input/s02_00_00.png"), bytes_of(t / "test/s02/00/00_blur.png"));
  EXPECT_EQ(bytes_of(t / "out/test/target/s01_00_00.png"),
            bytes_of(t / "test/s01/00/00_sharp.png"));
  fs::remove(t / "test/s02/00/00_sharp.png");
  const auto msg = error_of([&] { prepare_dataset("reloblur", opts(t.path(), t / "o2", 0)); });
  EXPECT_NE(msg.find("s02/00/00_sharp.png"), std::string::npos) << msg;
}

TEST(PrepareGoproCrops, ImagesLabelMapsAndGroupedMasks) {
  TempDir t("prep");
  const fs::path src = t / "gopro/train";
  // 520 x 700: rows 0, 8; columns 0, 188 -> 4 crops.
  write_image(src / "input/GOPR0372_07_00-000047.png", 520, 700, 1);
  write_image(src / "target/GOPR0372_07_00-000047.png", 520, 700, 2);
  cv::Mat label(520, 700, CV_8UC1, cv::Scalar(2));
  label(cv::Rect(600, 0, 100, 520)).setTo(4);  // only in the right-hand crops
  label(cv::Rect(0, 0, 50, 50)).setTo(6);      // only in the top-left crop
  fs::create_directories(src / "input_predict_mask");
  ASSERT_TRUE(cv::imwrite((src / "input_predict_mask/GOPR0372_07_00-000047.png").string(), label));
  // Grouped masks as 2_masks_to_grouped_masks.py makes them: one per distinct value.
  auto lab = torch::from_blob(label.data, {1, 1, 520, 700}, torch::kUInt8).clone();
  auto masks = torch::cat({lab == 2, lab == 4, lab == 6}, 0);  // (3, 1, H, W)
  fs::create_directories(src / "grouped_masks");
  io::write_npz((src / "grouped_masks/GOPR0372_07_00-000047.npz").string(), {{"masks", masks}},
                true);

  EXPECT_NE(error_of([&] {
              prepare_dataset("gopro-crops", opts(t / "gopro", t / "out", -1));
            }).find("expected 2103 pairs, found 1"),
            std::string::npos);
  const auto s = prepare_dataset("gopro-crops", opts(t / "gopro", t / "out", 1));
  EXPECT_EQ(s.split, "train");
  EXPECT_EQ(s.files, 16);
  const fs::path out = t / "out/train";
  const auto input = io::read_image_bgr((src / "input/GOPR0372_07_00-000047.png").string());
  const int ys[] = {0, 0, 8, 8}, xs[] = {0, 188, 0, 188};
  for (int i = 0; i < 4; ++i) {
    const auto name = fmt::format("GOPR0372_07_00-000047_s{:03d}", i + 1);
    const auto crop = io::read_image_bgr((out / "blur_crops" / (name + ".png")).string());
    ASSERT_EQ(crop.size(), cv::Size(512, 512));
    EXPECT_EQ(cv::norm(crop, input(cv::Rect(xs[i], ys[i], 512, 512)), cv::NORM_INF), 0) << name;
    EXPECT_TRUE(fs::exists(out / "sharp_crops" / (name + ".png")));
    const auto lm =
        io::read_image_bgr((out / "blur_predeblur_mask_crops" / (name + ".png")).string(), true);
    EXPECT_EQ(cv::norm(lm, label(cv::Rect(xs[i], ys[i], 512, 512)), cv::NORM_INF), 0) << name;
    const auto g =
        io::read_npz_array((out / "grouped_masks_crops" / (name + ".npz")).string(), "masks");
    // Values 2 and 6 in crops 1 and 3 (6 covers rows 0..49 of columns 0..49), 2 and 4
    // in crops 2 and 4: the third mask, empty in each crop, is dropped.
    ASSERT_EQ(g.size(0), 2) << name;
    EXPECT_EQ(g.size(2), 512);
    const auto crop_lab = lab.slice(2, ys[i], ys[i] + 512).slice(3, xs[i], xs[i] + 512);
    EXPECT_TRUE(torch::equal(g[0], crop_lab[0] == 2)) << name;
    EXPECT_TRUE(torch::equal(g[1], crop_lab[0] == (i % 2 ? 4 : 6))) << name;
  }
  const auto m = read_json(out / "manifest-crops.json");
  EXPECT_EQ(m["files"].size(), 16u);
  EXPECT_EQ(m["crop_size"], 512);
  // A missing partner (target without its label map) is named.
  fs::remove(src / "input_predict_mask/GOPR0372_07_00-000047.png");
  write_image(src / "input_predict_mask/other.png", 520, 700);
  const auto msg =
      error_of([&] { prepare_dataset("gopro-crops", opts(t / "gopro", t / "out2", 0)); });
  EXPECT_NE(msg.find("missing partner"), std::string::npos) << msg;
}

TEST(SdbPrepare, AppPreparesAndFailsNamingTheFile) {
  if (!test::app_built("sdb-prepare")) GTEST_SKIP() << "apps not built";
  TempDir t("prep");
  write_image(t / "test/s01/00/00_blur.png");
  write_image(t / "test/s01/00/00_sharp.png");
  auto r = test::run_app("sdb-prepare", {"reloblur", "--source", t.str(), "--output",
                                         (t / "out").string(), "--expect-pairs", "1", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.output();
  // -q: the result line alone, on stdout.
  EXPECT_NE(r.out.find("1 pairs verified"), std::string::npos) << r.output();
  EXPECT_EQ(r.err.find("command:"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(t / "out/test/manifest.json"));
  EXPECT_TRUE(fs::exists(t / "out/test/input/s01_00_00.png"));
  write_file_atomic((t / "test/s01/00/00_blur.png").string(), "truncated");
  r = test::run_app("sdb-prepare", {"reloblur", "--source", t.str(), "--output",
                                    (t / "out2").string(), "--expect-pairs", "1", "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output().find("00_blur.png"), std::string::npos) << r.output();
  r = test::run_app("sdb-prepare",
                    {"reloblur", "--source", t.str(), "--output", (t / "out3").string(), "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output().find("expected 395 pairs"), std::string::npos) << r.output();
}
