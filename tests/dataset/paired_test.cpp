#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "samdeblur/core/error.h"
#include "samdeblur/dataset/paired.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using samdeblur::dataset::DatasetOptions;
using samdeblur::dataset::MaskEncoding;
using namespace samdeblur::dataset;
using samdeblur::test::tiny_dataset_options;

namespace {

const std::string kData = samdeblur::test::data_path("eval");

// The message of the error list_samples(o) throws.
std::string list_error(const DatasetOptions& o) {
  return samdeblur::test::error_of([&] { list_samples(o); });
}

// Copies the tiny benchmark into the empty folder `dir`.
void copy_dataset(const fs::path& dir) {
  for (const char* sub : {"input", "target", "grouped_masks", "input_mask"})
    fs::copy(kData + "/" + sub, dir / sub);
}

}  // namespace

TEST(PairedDataset, ListsSortedTriples) {
  const auto samples = list_samples(tiny_dataset_options("PairedImageGroupMaskDataset"));
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].name, "img_a");
  EXPECT_EQ(samples[2].name, "img_c");
  EXPECT_EQ(fs::path(samples[1].mask).filename(), "img_b.npz");
  EXPECT_EQ(fs::path(samples[1].lq).filename(), "img_b.png");
}

TEST(PairedDataset, LoadsOfficialConversions) {
  const auto o = tiny_dataset_options("PairedImageGroupMaskDataset");
  const Sample s = load_sample(list_samples(o)[0], o);
  ASSERT_EQ(s.lq.dim(), 3);
  EXPECT_EQ(s.lq.size(0), 3);
  EXPECT_EQ(s.lq.size(1), s.gt_u8.rows);
  // RGB order: channel 0 of the tensor is the R (index 2) of the BGR image.
  const auto px = s.lq_u8.at<cv::Vec3b>(5, 7);
  EXPECT_FLOAT_EQ(s.lq[0][5][7].item<float>(), static_cast<float>(px[2]) / 255.0f);
  EXPECT_FLOAT_EQ(s.lq[2][5][7].item<float>(), static_cast<float>(px[0]) / 255.0f);
  ASSERT_TRUE(s.masks.has_value());
  EXPECT_GT(s.masks->num_masks, 1);
  EXPECT_NEAR(s.masks->value, 1.0 / 255.0, 1e-12);  // official masks2tensor quirk
  EXPECT_TRUE(s.masks->labels.defined());           // a partition takes the fast path
}

TEST(PairedDataset, CleanEncodingAndCatChannel) {
  auto o = tiny_dataset_options("PairedImageGroupMaskDataset");
  o.mask_encoding = MaskEncoding::clean;
  EXPECT_DOUBLE_EQ(load_sample(list_samples(o)[1], o).masks->value, 1.0);
  const auto cat = tiny_dataset_options("PairedImageMaskDataset");
  const Sample s = load_sample(list_samples(cat)[1], cat);
  EXPECT_EQ(s.lq.size(0), 4);  // RGB + label map / 255
  EXPECT_LE(s.lq[3].max().item<float>(), 1.0f);
}

TEST(PairedDataset, ErrorsNameTheProblem) {
  auto o = tiny_dataset_options("PairedImageDataset");
  o.dataroot_lq = "/nonexistent/input";
  EXPECT_NE(list_error(o).find("/nonexistent/input"), std::string::npos);

  const samdeblur::test::TempDir tmp("paired_errors");
  const fs::path dir = tmp.path();
  copy_dataset(dir);
  auto d = tiny_dataset_options("PairedImageGroupMaskDataset", dir.string());
  fs::remove(dir / "grouped_masks" / "img_c.npz");
  std::string err = list_error(d);
  EXPECT_NE(err.find("2 mask files"), std::string::npos) << err;

  fs::copy_file(dir / "grouped_masks" / "img_a.npz", dir / "grouped_masks" / "other.npz");
  err = list_error(d);
  EXPECT_NE(err.find("img_c"), std::string::npos) << err;

  // Non-image files are reported (warning), not paired; a duplicated stem is an error.
  { std::ofstream(dir / "input" / "notes.txt") << "x"; }
  fs::copy_file(dir / "input" / "img_a.png", dir / "input" / "img_a.jpg");
  err = list_error(tiny_dataset_options("PairedImageDataset", dir.string()));
  EXPECT_NE(err.find("img_a"), std::string::npos) << err;
}

TEST(PairedDataset, CorruptMaskFileNamesPath) {
  const samdeblur::test::TempDir tmp("paired_corrupt");
  const fs::path dir = tmp.path();
  copy_dataset(dir);
  { std::ofstream(dir / "grouped_masks" / "img_b.npz", std::ios::trunc) << "not a zip"; }
  const auto o = tiny_dataset_options("PairedImageGroupMaskDataset", dir.string());
  const auto samples = list_samples(o);
  const std::string err = samdeblur::test::error_of([&] { load_sample(samples[1], o); });
  EXPECT_NE(err.find("img_b.npz"), std::string::npos) << err;
}
