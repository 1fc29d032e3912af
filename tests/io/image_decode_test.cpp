// The one-pass checked decode (src/io/image_check.cpp) gives exactly cv::imdecode's
// bytes, and the structural check behind io::check_image_file (sdb-eval's check of
// every input before any output) finds truncated and damaged files without decoding.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "../../src/io/image_check.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace io = samdeblur::io;
using samdeblur::FileError;

namespace {

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.type() == b.type() && a.size() == b.size() &&
         std::equal(a.datastart, a.dataend, b.datastart, b.dataend);
}

std::vector<uint8_t> encode(const std::string& ext, const cv::Mat& img,
                            const std::vector<int>& params = {}) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, img, out, params)) << ext;
  return out;
}

// Encodings of smooth random images: every JPEG / PNG kind the fast path takes and some
// it leaves to OpenCV (16-bit, alpha read as gray).
std::vector<std::pair<std::string, std::vector<uint8_t>>> encoded_images() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  cv::RNG rng(7);
  for (int k = 0; k < 2; ++k) {
    cv::Mat bgr(37 + 20 * k, 53 + 11 * k, CV_8UC3);  // odd sizes: partial MCUs
    rng.fill(bgr, cv::RNG::UNIFORM, 0, 256);
    cv::GaussianBlur(bgr, bgr, cv::Size(5, 5), 1.5);
    cv::Mat gray, bgra, wide;
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
    bgr.convertTo(wide, CV_16U, 257);
    for (int q : {40, 95}) {
      const std::string tag = std::to_string(k) + "_q" + std::to_string(q);
      out.emplace_back("jpg" + tag, encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, q}));
      out.emplace_back(
          "progressive" + tag,
          encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, q, cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
      out.emplace_back(
          "restart" + tag,
          encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, q, cv::IMWRITE_JPEG_RST_INTERVAL, 2}));
      out.emplace_back("gray_jpg" + tag, encode(".jpg", gray, {cv::IMWRITE_JPEG_QUALITY, q}));
    }
    const std::string tag = std::to_string(k);
    out.emplace_back("png" + tag, encode(".png", bgr));
    out.emplace_back("gray_png" + tag, encode(".png", gray));
    out.emplace_back("bgra_png" + tag, encode(".png", bgra));
    out.emplace_back("png16_" + tag, encode(".png", wide));
    out.emplace_back("bilevel_png" + tag, encode(".png", gray > 128, {cv::IMWRITE_PNG_BILEVEL, 1}));
  }
  const fs::path src = samdeblur::test::source_path("");
  for (const auto& dir : {src / "data/demo/photos", src / "tests/data/metrics",
                          src / "tests/data/eval/input", src / "tests/data/eval/input_mask"})
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".jpg" || e.path().extension() == ".png")
        out.emplace_back(e.path().string(), samdeblur::read_file_bytes(e.path().string()));
  return out;
}

std::string write_bytes(const samdeblur::test::TempDir& dir, const std::string& name,
                        const std::vector<uint8_t>& bytes) {
  return samdeblur::test::write_text(dir / name, std::string(bytes.begin(), bytes.end()));
}

std::string check_error(const std::string& path) {
  return samdeblur::test::error_of<FileError>([&] { io::check_image_file(path); });
}

}  // namespace

TEST(ImageDecode, OnePassDecodeGivesTheBytesOfImdecode) {
  int one_pass = 0, total = 0;
  for (const auto& [name, bytes] : encoded_images()) {
    for (const bool gray : {false, true}) {
      const cv::Mat ref = cv::imdecode(bytes, gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
      ASSERT_FALSE(ref.empty()) << name;
      cv::Mat direct;
      ++total;
      if (io::detail::decode_image_checked(bytes.data(), bytes.size(), gray, name, &direct)) {
        ++one_pass;
        EXPECT_TRUE(same_pixels(direct, ref)) << name << (gray ? " grayscale" : " colour");
      }
      EXPECT_TRUE(same_pixels(io::decode_image_bgr(bytes, name, gray), ref))
          << name << (gray ? " grayscale" : " colour");
    }
  }
  // Everything but 16-bit PNGs and grayscale reads of colour PNGs takes the one pass.
  EXPECT_GE(one_pass, total * 3 / 4) << one_pass << " of " << total;
  EXPECT_LT(one_pass, total);  // and the fall-back to cv::imdecode is exercised too
}

TEST(ImageDecode, StructureCheckPassesEveryValidImage) {
  const samdeblur::test::TempDir dir("image_structure_ok");
  int i = 0;
  for (const auto& [name, bytes] : encoded_images()) {
    const std::string path = write_bytes(dir, std::to_string(i++) + ".img", bytes);
    EXPECT_NO_THROW(io::check_image_file(path)) << name;
  }
}

TEST(ImageDecode, StructureCheckFindsTruncationAndDamageByName) {
  const samdeblur::test::TempDir dir("image_structure_bad");
  const fs::path src = samdeblur::test::source_path("");
  const auto jpg = samdeblur::read_file_bytes((src / "data/demo/photos/chelsea.jpg").string());
  const auto png = samdeblur::read_file_bytes((src / "tests/data/metrics/noise_gt.png").string());
  for (const double keep : {0.1, 0.5, 0.9, 0.999}) {
    const std::string cut_jpg = write_bytes(
        dir, "cut.jpg", {jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() * keep)});
    std::string msg = check_error(cut_jpg);
    EXPECT_NE(msg.find(cut_jpg + ": truncated or corrupt JPEG"), std::string::npos) << msg;
    const std::string cut_png = write_bytes(
        dir, "cut.png", {png.begin(), png.begin() + static_cast<long>(png.size() * keep)});
    msg = check_error(cut_png);
    EXPECT_NE(msg.find(cut_png + ": truncated or corrupt PNG"), std::string::npos) << msg;
  }
  // The last two bytes (EOI) / the IEND chunk missing.
  const std::string no_eoi = write_bytes(dir, "no_eoi.jpg", {jpg.begin(), jpg.end() - 2});
  EXPECT_NE(check_error(no_eoi).find("end-of-image"), std::string::npos);
  const std::string no_iend = write_bytes(dir, "no_iend.png", {png.begin(), png.end() - 12});
  EXPECT_NE(check_error(no_iend).find("IEND"), std::string::npos);
  // One flipped bit in the image data: the IDAT CRC.
  auto flipped = png;
  flipped[flipped.size() / 2] ^= 0x10;
  const std::string crc = write_bytes(dir, "crc.png", flipped);
  EXPECT_NE(check_error(crc).find("CRC error in the IDAT chunk"), std::string::npos);
  // Not an image, empty, a folder: as read_image_bgr.
  const std::string text = samdeblur::test::write_text(dir / "text.png", "not a png");
  EXPECT_NE(check_error(text).find("cannot decode"), std::string::npos);
  const std::string empty = samdeblur::test::write_text(dir / "empty.png", "");
  EXPECT_NE(check_error(empty).find("empty file"), std::string::npos);
  fs::create_directories(dir / "folder.png");
  EXPECT_NE(check_error((dir / "folder.png").string()).find("directory"), std::string::npos);
}

TEST(ImageDecode, CorruptEntropyDataIsLeftToTheDecode) {
  // The documented limit of the structural check: a marker inside the entropy-coded
  // data ends the scan early, which only decoding notices.
  const samdeblur::test::TempDir dir("image_structure_scan");
  auto jpg =
      samdeblur::read_file_bytes(samdeblur::test::source_path("data/demo/photos/coffee.jpg"));
  size_t sos = 0;
  for (size_t i = 2; i + 4 < jpg.size() && !sos; ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == 0xda) sos = i;
  ASSERT_GT(sos, 0u);
  const size_t mid = sos + (jpg.size() - sos) / 2;
  jpg[mid] = 0xff;
  jpg[mid + 1] = 0xd9;
  const std::string path = write_bytes(dir, "corrupt_scan.jpg", jpg);
  EXPECT_NO_THROW(io::check_image_file(path));
  const std::string msg = samdeblur::test::error_of<FileError>([&] { io::read_image_bgr(path); });
  EXPECT_NE(msg.find("truncated or corrupt JPEG: Corrupt JPEG data"), std::string::npos) << msg;
}

TEST(ImageDecode, MutatedImagesNeverCrashEitherCheck) {
  const auto png =
      samdeblur::read_file_bytes(samdeblur::test::source_path("tests/data/eval/input/img_a.png"));
  const auto jpg =
      samdeblur::read_file_bytes(samdeblur::test::source_path("data/demo/photos/rocket.jpg"));
  for (const auto* good : {&png, &jpg}) {
    samdeblur::test::for_each_mutation(*good, 3, 150, 4, 5, [](const std::vector<uint8_t>& b) {
      cv::Mat out;
      try {
        io::detail::check_image_structure(b.data(), b.size(), "fuzz");
      } catch (const FileError&) {
      }
      try {
        io::detail::decode_image_checked(b.data(), b.size(), false, "fuzz", &out);
      } catch (const FileError&) {
      }
    });
  }
}
