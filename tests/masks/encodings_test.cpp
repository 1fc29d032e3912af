// SAM-Deblur mask files (label map, grouped and exclusive npz, COCO JSON) and the
// sdb-masks batch job (resume, atomic outputs, superpixel source, embeddings).
// Label-map / grouped fixtures come from the official draw_segmask and
// grayscale_to_masks: PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3
// scripts/make_amg_fixtures.py
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/job.h"
#include "samdeblur/masks/superpixels.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::sam;
using namespace samdeblur::masks;
using nlohmann::json;

namespace {

const std::string kHint =
    "regenerate with PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 "
    "scripts/make_amg_fixtures.py";

MaskRecord record_of(const torch::Tensor& mask) {
  MaskRecord r;
  r.rle = mask_to_rle(mask.unsqueeze(0))[0];
  r.area = area_from_rle(r.rle);
  r.point_coords = {{0.0, 0.0}};
  return r;
}

MaskRecord rect_record(int64_t h, int64_t w, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  auto m = torch::zeros({h, w}, torch::kBool);
  m.slice(0, y0, std::min(y1, h)).slice(1, x0, std::min(x1, w)).fill_(true);
  return record_of(m);
}

cv::Mat demo_image(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x * 4 + seed * 30) % 256),
                                        static_cast<uint8_t>((y * 6) % 256),
                                        static_cast<uint8_t>(((x / 10 + y / 10) % 2) * 200));
  return m;
}

std::vector<std::string> tmp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos)
      out.push_back(e.path().string());
  return out;
}

}  // namespace

TEST(MaskFiles, SegmaskValues) {
  EXPECT_EQ(segmask_value(0), 2);
  EXPECT_EQ(segmask_value(126), 254);
  EXPECT_EQ(segmask_value(127), 255);
  EXPECT_EQ(segmask_value(128), 253);
  EXPECT_EQ(segmask_value(254), 1);
  EXPECT_EQ(segmask_value(255), -1);
  EXPECT_EQ(segmask_value(300), -91);
}

TEST(MaskFiles, LabelMapAndGroupsMatchOfficialScripts) {
  const json cases = test::load_json_fixture("sam/amg/mask_files.json", kHint);
  const auto arrays = test::load_npz_fixture("sam/amg/mask_files.npz", kHint);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    const int64_t h = c["h"], w = c["w"];
    std::vector<MaskRecord> records;
    for (const auto& r : c["rects"]) records.push_back(rect_record(h, w, r[0], r[1], r[2], r[3]));
    const cv::Mat map = label_map(records, h, w);
    const auto expected_map = arrays.at(name + "_label_map");
    ASSERT_EQ(map.type(), CV_8UC1);
    const auto got = torch::from_blob(map.data, {h, w}, torch::kUInt8).clone();
    EXPECT_TRUE(torch::equal(got, expected_map)) << name << ": label map differs from draw_segmask";
    std::vector<uint8_t> values;
    const auto groups = grouped_masks(map, &values);
    const auto expected_groups = arrays.at(name + "_grouped");
    EXPECT_EQ(groups.sizes(), expected_groups.sizes()) << name;
    EXPECT_EQ(groups.scalar_type(), torch::kBool);
    if (groups.sizes() == expected_groups.sizes()) {
      EXPECT_TRUE(torch::equal(groups, expected_groups)) << name;
    }
    EXPECT_TRUE(std::is_sorted(values.begin(), values.end()));
  }
}

TEST(MaskFiles, ExclusiveLabelsPartitionTheImage) {
  const int64_t h = 10, w = 12;
  std::vector<MaskRecord> recs = {rect_record(h, w, 0, 0, 8, 8), rect_record(h, w, 2, 2, 5, 5),
                                  rect_record(h, w, 6, 6, 12, 10)};
  const auto first = exclusive_labels(recs, h, w, ExclusiveOrder::generator);
  EXPECT_EQ(first[3][3].item<int>(), 1);  // covered by masks 0 and 1: the first wins
  EXPECT_EQ(first[9][0].item<int>(), 0);  // uncovered: background
  EXPECT_EQ(first[7][7].item<int>(), 1);
  EXPECT_EQ(first[9][11].item<int>(), 3);
  const auto small = exclusive_labels(recs, h, w, ExclusiveOrder::smallest_first);
  EXPECT_EQ(small[3][3].item<int>(), 2);  // the 3x3 mask is smallest
  EXPECT_EQ(small[7][7].item<int>(), 3);  // 24 px < 64 px
  auto [masks, ids] = exclusive_masks(first);
  EXPECT_EQ(masks.sizes(),
            torch::IntArrayRef({3, 1, h, w}));  // background, mask 0, mask 2 (mask 1 is hidden)
  EXPECT_EQ(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel()),
            (std::vector<int64_t>{-1, 0, 2}));
  EXPECT_TRUE(torch::all(masks.sum(0) == 1).item<bool>()) << "every pixel in exactly one group";
}

TEST(MaskFiles, WritersProduceReadableFiles) {
  const test::TempDir tmp("masks");
  const int64_t h = 9, w = 13;
  GenerateResult res;
  res.masks = {rect_record(h, w, 0, 0, 5, 5), rect_record(h, w, 3, 3, 13, 9)};
  for (auto f : {MaskFileFormat::label_png, MaskFileFormat::grouped_npz,
                 MaskFileFormat::exclusive_npz, MaskFileFormat::coco_json}) {
    EXPECT_EQ(mask_file_format_from_name(mask_file_format_name(f)), f);
    const std::string path = (tmp / ("out" + mask_file_extension(f))).string();
    write_mask_file(path, f, res, h, w);
    ASSERT_TRUE(fs::exists(path));
    if (f == MaskFileFormat::label_png) {
      const cv::Mat back = io::read_image_bgr(path, /*grayscale=*/true);
      EXPECT_EQ(cv::norm(back, label_map(res.masks, h, w), cv::NORM_INF), 0.0);
      EXPECT_EQ(back.at<uint8_t>(4, 4), 6);  // 2 + 4
    } else if (f == MaskFileFormat::grouped_npz) {
      const auto m = io::read_npz_array(path, "masks");
      EXPECT_EQ(m.sizes(), torch::IntArrayRef({4, 1, h, w}));  // values 0, 2, 4, 6
    } else if (f == MaskFileFormat::exclusive_npz) {
      EXPECT_EQ(io::read_npz_array(path, "masks").size(0), 3);
      EXPECT_EQ(io::read_npz_array(path, "mask_ids").numel(), 3);
    } else {
      std::ifstream in(path);
      const auto j = json::parse(in);
      ASSERT_EQ(j.size(), 2u);
      EXPECT_EQ(j[0]["area"], 25);
      const Rle back = coco_decode_rle({h, w, j[1]["segmentation"]["counts"].get<std::string>()});
      EXPECT_EQ(back, res.masks[1].rle);
    }
  }
  EXPECT_TRUE(tmp_files(tmp.path()).empty());
  EXPECT_THROW(mask_file_format_from_name("tiff"), ConfigError);
}

TEST(MaskJob, ResumeSkipsFinishedImagesAndWritesAtomically) {
  const test::TempDir tmp("masks");
  const fs::path in = tmp / "in", out = tmp / "out";
  fs::create_directories(in);
  for (int i = 0; i < 3; ++i)
    cv::imwrite((in / ("img" + std::to_string(i) + ".png")).string(), demo_image(30, 40, i));
  cv::imwrite((in / "mask_skipme.png").string(),
              demo_image(30, 40, 9));  // official: "mask_" prefix skipped
  std::ofstream(in / "notes.txt") << "not an image";
  EXPECT_EQ(list_input_images(in.string()).size(), 3u);

  MaskJobOptions o;
  o.input = in.string();
  o.output_dir = out.string();
  o.progress = false;
  SuperpixelOptions so;
  so.region_size = 12;
  int calls = 0;
  const MaskFn counting = [&](const cv::Mat& img) {
    ++calls;
    return superpixel_masks(img, so, OutputMode::uncompressed_rle);
  };
  auto s = run_mask_job(o, counting);
  EXPECT_EQ(s.processed, 3);
  EXPECT_EQ(s.skipped, 0);
  EXPECT_GT(s.masks, 3);
  const cv::Mat first = io::read_image_bgr((out / "img0.png").string(), true);
  EXPECT_EQ(first.size(), cv::Size(40, 30));
  // Second run: nothing to do.
  s = run_mask_job(o, counting);
  EXPECT_EQ(s.processed, 0);
  EXPECT_EQ(s.skipped, 3);
  EXPECT_EQ(calls, 3);
  // A removed output is regenerated, identically (deterministic source).
  fs::remove(out / "img1.png");
  s = run_mask_job(o, counting);
  EXPECT_EQ(s.processed, 1);
  EXPECT_EQ(s.skipped, 2);
  // A failure mid-way leaves finished outputs and no partial file.
  fs::remove(out / "img1.png");
  fs::remove(out / "img2.png");
  const MaskFn failing = [&](const cv::Mat& img) -> GenerateResult {
    if (calls++ == 5) throw Error("boom");  // img1 succeeds, img2 fails
    return superpixel_masks(img, so);
  };
  EXPECT_THROW(run_mask_job(o, failing), Error);
  EXPECT_TRUE(fs::exists(out / "img1.png"));
  EXPECT_FALSE(fs::exists(out / "img2.png"));
  EXPECT_TRUE(tmp_files(out).empty());
}

TEST(MaskJob, EmbeddingsAndSingleFileInput) {
  const test::TempDir tmp("masks");
  const fs::path img = tmp / "photo.jpg";
  cv::imwrite(img.string(), demo_image(20, 24, 1));
  MaskJobOptions o;
  o.input = img.string();
  o.output_dir = (tmp / "out").string();
  o.progress = false;
  o.save_embeddings = true;
  o.format = MaskFileFormat::grouped_npz;
  const MaskFn with_embedding = [](const cv::Mat& bgr) {
    auto r = superpixel_masks(bgr, {});
    r.image_embedding = torch::arange(256 * 64 * 64, torch::kFloat32).reshape({1, 256, 64, 64});
    return r;
  };
  EXPECT_EQ(run_mask_job(o, with_embedding).processed, 1);
  EXPECT_TRUE(fs::exists(tmp / "out" / "photo.npz"));
  const auto emb = io::read_npy((tmp / "out" / "photo_embedding.npy").string());
  EXPECT_EQ(emb.sizes(), torch::IntArrayRef({1, 256, 64, 64}));
  // Superpixels have no embedding: asking for one is an error, not a silent skip.
  fs::remove_all(tmp / "out");
  EXPECT_THROW(run_mask_job(o, *make_superpixel_source({}, OutputMode::binary_mask)), Error);
  EXPECT_THROW(list_input_images((tmp / "missing").string()), FileError);
}

TEST(SdbMasks, EndToEndWithSuperpixels) {
  if (!test::app_built("sdb-masks"))
    GTEST_SKIP() << "sdb-masks not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const test::TempDir tmp("masks");
  const fs::path in = tmp / "in";
  fs::create_directories(in);
  cv::imwrite((in / "a.png").string(), demo_image(30, 40, 0));
  cv::imwrite((in / "b.png").string(), demo_image(30, 40, 1));
  auto run = [&](const std::vector<std::string>& args) {
    const auto r = test::run_app("sdb-masks", args);
    return std::make_pair(r.exit_code, r.output());
  };
  // SAM without a checkpoint: an error that says where to get one.
  auto [code, log] = run({"--input", in.string(), "--output", (tmp / "o1").string()});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("dl.fbaipublicfiles.com/segment_anything"), std::string::npos) << log;
  // Superpixels, then resume.
  std::tie(code, log) = run({"--source", "superpixels", "--input", in.string(), "--output",
                             (tmp / "o2").string(), "--format", "label-png"});
  EXPECT_EQ(code, 0) << log;
  EXPECT_TRUE(fs::exists(tmp / "o2" / "a.png"));
  EXPECT_TRUE(fs::exists(tmp / "o2" / "b.png"));
  const cv::Mat map = io::read_image_bgr((tmp / "o2" / "a.png").string(), true);
  EXPECT_EQ(map.size(), cv::Size(40, 30));
  std::tie(code, log) =
      run({"--source", "superpixels", "--input", in.string(), "--output", (tmp / "o2").string()});
  EXPECT_EQ(code, 0) << log;
  EXPECT_NE(log.find("skipping"), std::string::npos) << log;
}

TEST(MaskJob, ResumeRecomputesIncompleteOrInvalidOutputs) {
  const test::TempDir tmp("masks");
  const fs::path in = tmp / "in", out = tmp / "out";
  fs::create_directories(in);
  cv::imwrite((in / "a.png").string(), demo_image(30, 40, 0));
  cv::imwrite((in / "b.png").string(), demo_image(30, 40, 1));
  int calls = 0;
  const MaskFn counting = [&](const cv::Mat& img) {
    ++calls;
    return superpixel_masks(img, {}, OutputMode::coco_rle);
  };
  for (const auto format : {MaskFileFormat::label_png, MaskFileFormat::grouped_npz,
                            MaskFileFormat::exclusive_npz, MaskFileFormat::coco_json}) {
    SCOPED_TRACE(mask_file_format_name(format));
    fs::remove_all(out);
    MaskJobOptions o;
    o.input = in.string();
    o.output_dir = out.string();
    o.progress = false;
    o.format = format;
    EXPECT_EQ(run_mask_job(o, counting).processed, 2);
    const std::string a = mask_output_path((in / "a.png").string(), o);
    const std::string b = mask_output_path((in / "b.png").string(), o);
    EXPECT_EQ(output_problem((in / "a.png").string(), o), "");
    EXPECT_EQ(mask_file_problem(a, format, 30, 40), "");
    EXPECT_NE(mask_file_problem(a, format, 31, 40), "") << "wrong size must not pass";
    // A zero-byte file and a truncated one are not finished outputs.
    std::ofstream(a, std::ios::trunc).close();
    {
      std::ifstream src(b, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
      std::ofstream(b, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
    }
    EXPECT_NE(output_problem((in / "a.png").string(), o), "");
    EXPECT_NE(output_problem((in / "b.png").string(), o), "");
    calls = 0;
    const auto s = run_mask_job(o, counting);
    EXPECT_EQ(s.processed, 2);
    EXPECT_EQ(s.redone, 2);
    EXPECT_EQ(s.skipped, 0);
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(output_problem((in / "a.png").string(), o), "");
    EXPECT_EQ(output_problem((in / "b.png").string(), o), "");
    EXPECT_EQ(run_mask_job(o, counting).skipped, 2);
  }
  // A label map of another image's size is recomputed too.
  MaskJobOptions o;
  o.input = in.string();
  o.output_dir = out.string();
  o.progress = false;
  fs::remove_all(out);
  fs::create_directories(out);
  cv::imwrite((out / "a.png").string(), cv::Mat(10, 10, CV_8UC1, cv::Scalar(0)));
  EXPECT_NE(output_problem((in / "a.png").string(), o).find("10x10"), std::string::npos);
  EXPECT_EQ(run_mask_job(o, counting).redone, 1);
  EXPECT_EQ(io::read_image_bgr((out / "a.png").string(), true).size(), cv::Size(40, 30));
}

// Issue 8: masks were written for a truncated JPEG without a word. It is refused by name
// and no mask file appears for it.
TEST(SdbMasks, TruncatedInputImageIsRefusedByName) {
  if (!test::app_built("sdb-masks"))
    GTEST_SKIP() << "sdb-masks not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const test::TempDir tmp("masks_truncated");
  std::vector<uint8_t> jpg;
  ASSERT_TRUE(cv::imencode(".jpg", demo_image(30, 40, 0), jpg));
  const std::string input = test::write_text(
      tmp / "cut.jpg", std::string(jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() / 2)));
  const auto r = test::run_app(
      "sdb-masks", {"--source", "superpixels", "-q", "-i", input, "-o", (tmp / "o").string()});
  EXPECT_NE(r.exit_code, 0) << r.output();
  EXPECT_NE(r.output().find(input + ": truncated or corrupt JPEG"), std::string::npos)
      << r.output();
  if (fs::exists(tmp / "o")) {
    for (const auto& e : fs::recursive_directory_iterator(tmp / "o")) {
      EXPECT_NE(e.path().filename().string().rfind("cut", 0), 0u)
          << "a mask was written for the damaged image: " << e.path();
    }
  }
}

TEST(SdbMasks, NumericFlagsAreRangeChecked) {
  if (!test::app_built("sdb-masks"))
    GTEST_SKIP() << "sdb-masks not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const test::TempDir tmp("masks");
  cv::imwrite((tmp / "a.png").string(), demo_image(30, 40, 0));
  auto run = [&](const std::string& flags) {
    std::vector<std::string> args = {
        "--source", "superpixels",       "-q", "-i", (tmp / "a.png").string(),
        "-o",       (tmp / "o").string()};
    for (const auto& w : test::words(flags)) args.push_back(w);
    const auto r = test::run_app("sdb-masks", args);
    return std::make_pair(r.exit_code, r.output());
  };
  for (const std::string bad :
       {"--points-per-side 0", "--threads -1", "--points-per-batch 0", "--crop-n-layers -1",
        "--crop-overlap-ratio 1", "--min-mask-region-area -5", "--superpixel-size 1",
        "--crop-n-points-downscale-factor 0", "--points-per-side x"}) {
    const auto [code, log] = run(bad);
    EXPECT_EQ(code, 2) << bad << "\n" << log;
    const std::string flag = bad.substr(0, bad.find(' '));
    EXPECT_NE(log.find(flag), std::string::npos) << "the message names the flag: " << log;
  }
  const auto [code, log] = run("--points-per-side 4 --superpixel-size 12 --threads 1");
  EXPECT_EQ(code, 0) << log;
  const auto [help_code, help] = run("--help");
  EXPECT_EQ(help_code, 0);
  for (const char* flag :
       {"--points-per-side", "--points-per-batch", "--pred-iou-thresh", "--stability-score-thresh",
        "--stability-score-offset", "--box-nms-thresh", "--crop-n-layers", "--crop-nms-thresh",
        "--crop-overlap-ratio", "--crop-n-points-downscale-factor", "--min-mask-region-area",
        "--superpixel-size"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}
