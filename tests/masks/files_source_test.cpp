// Mask source "files": precomputed masks read through the same interface as SAM
// and superpixels. Mask files come from sdb-masks (superpixels, so no weights).
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/source.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::masks;
using samdeblur::test::TempDir;

namespace {

const std::string kInput = std::string(SAMDEBLUR_TEST_DATA) + "/eval/input";
const std::vector<std::string> kImages = {"img_a", "img_b", "img_c"};

// sdb-masks over the eval fixture images with SLIC superpixels into `out`.
// `source` replaces the superpixel source arguments (e.g. --source files ...).
void run_sdb_masks(const std::string& format, const fs::path& out,
                   const std::vector<std::string>& source = {"--source", "superpixels",
                                                             "--superpixel-size", "8"}) {
  std::vector<std::string> args = source;
  for (const std::string& a : {std::string("-q"), std::string("--format"), format,
                               std::string("-i"), kInput, std::string("-o"), out.string()})
    args.push_back(a);
  const auto r = test::run_app("sdb-masks", args);
  ASSERT_EQ(r.exit_code, 0) << r.output();
}

MaskSourceOptions files_options(const fs::path& folder) {
  MaskSourceOptions o;
  o.type = "files";
  o.files.folder = folder.string();
  return o;
}

sam::GenerateResult generate(MaskSource& source, const std::string& stem) {
  const std::string path = kInput + "/" + stem + ".png";
  return source.generate(io::read_image_bgr(path), path);
}

bool same_map(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::countNonZero(a != b) == 0;
}

}  // namespace

TEST(FilesMaskSource, FactoryListsIt) {
  const auto& types = mask_source_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "files"), types.end());
  TempDir dir("files_source");
  EXPECT_NE(make_mask_source(files_options(dir.path()))->describe().find(dir.str()),
            std::string::npos);
  EXPECT_THROW(make_mask_source(files_options("")), ConfigError);
}

TEST(FilesMaskSource, LabelMapsRoundTripToTheSameMapsAndGroups) {
  if (!test::app_built("sdb-masks")) GTEST_SKIP() << "sdb-masks not built";
  TempDir dir("files_source");
  run_sdb_masks("label-png", dir / "labels");
  auto source = make_mask_source(files_options(dir / "labels"));
  for (const auto& stem : kImages) {
    const cv::Mat file = io::read_image_bgr((dir / "labels" / (stem + ".png")).string(), true);
    const auto result = generate(*source, stem);
    const cv::Mat map = label_map(result.masks, file.rows, file.cols);
    EXPECT_TRUE(same_map(map, file)) << stem;
    EXPECT_TRUE(torch::equal(grouped_masks(map), grouped_masks(file))) << stem;
  }
}

TEST(FilesMaskSource, GroupedNpzRoundTripsToTheSameGroups) {
  if (!test::app_built("sdb-masks")) GTEST_SKIP() << "sdb-masks not built";
  TempDir dir("files_source");
  run_sdb_masks("grouped-npz", dir / "grouped");
  auto source = make_mask_source(files_options(dir / "grouped"));
  for (const auto& stem : kImages) {
    const auto file = io::read_npz_array((dir / "grouped" / (stem + ".npz")).string(), "masks");
    const auto result = generate(*source, stem);
    const cv::Mat map = label_map(result.masks, file.size(2), file.size(3));
    EXPECT_TRUE(torch::equal(grouped_masks(map), file)) << stem;
  }
}

TEST(FilesMaskSource, SdbMasksConvertsLabelMapsToTheGroupedFilesItWouldWrite) {
  if (!test::app_built("sdb-masks")) GTEST_SKIP() << "sdb-masks not built";
  TempDir dir("files_source");
  run_sdb_masks("label-png", dir / "labels");
  run_sdb_masks("grouped-npz", dir / "direct");
  run_sdb_masks("grouped-npz", dir / "converted",
                {"--source", "files", "--masks-folder", (dir / "labels").string()});
  for (const auto& stem : kImages)
    EXPECT_TRUE(
        torch::equal(io::read_npz_array((dir / "converted" / (stem + ".npz")).string(), "masks"),
                     io::read_npz_array((dir / "direct" / (stem + ".npz")).string(), "masks")))
        << stem;
}

TEST(FilesMaskSource, MissingOrMismatchedFileIsAnErrorNamingIt) {
  TempDir dir("files_source");
  auto source = make_mask_source(files_options(dir.path()));
  const std::string expected = (dir / "img_a.png").string();
  try {
    generate(*source, "img_a");
    ADD_FAILURE() << "no error for a missing mask file";
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), expected);
    EXPECT_NE(std::string(e.what()).find("img_a.npz"), std::string::npos) << e.what();
  }
  cv::imwrite(expected, cv::Mat(3, 5, CV_8UC1, cv::Scalar(2)));  // wrong size
  try {
    generate(*source, "img_a");
    ADD_FAILURE() << "no error for a mask file of the wrong size";
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), expected);
  }
  EXPECT_THROW(make_mask_source(files_options(dir / "absent")), FileError);
}

TEST(FilesMaskSource, MaskProviderKeysOnTheMaskFile) {
  if (!test::app_built("sdb-masks")) GTEST_SKIP() << "sdb-masks not built";
  TempDir dir("files_source");
  run_sdb_masks("label-png", dir / "labels");
  MaskProvider provider(files_options(dir / "labels"), (dir / "cache").string());
  const std::string image = kInput + "/img_a.png";
  const std::string key = provider.cache_key(image);
  const cv::Mat file = io::read_image_bgr((dir / "labels" / "img_a.png").string(), true);
  EXPECT_TRUE(same_map(provider.label_map(image), file));
  // A changed mask file is a new cache entry, never the stale one.
  cv::Mat changed = file.clone();
  changed.setTo(cv::Scalar(4));
  cv::imwrite((dir / "labels" / "img_a.png").string(), changed);
  EXPECT_NE(provider.cache_key(image), key);
  EXPECT_TRUE(same_map(provider.label_map(image), changed));
}
