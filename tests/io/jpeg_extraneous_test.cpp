// JPEGs with junk bytes before a marker (libjpeg's JWRN_EXTRANEOUS_DATA, written
// by some cameras) decode like cv::imread with a warning naming the file;
// truncation and corrupt scan data stay refused (robustness_test.cpp).
#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/io/image.h"
#include "support/test_support.h"

namespace io = samdeblur::io;

namespace {

// Offset of the first marker `code` (0xff code) at a segment boundary, after SOI.
size_t marker_offset(const std::vector<uint8_t>& jpg, uint8_t code) {
  size_t i = 2;
  while (i + 4 <= jpg.size() && jpg[i] == 0xff) {
    if (jpg[i + 1] == code) return i;
    i += 2 + (size_t{jpg[i + 2]} << 8 | jpg[i + 3]);  // skip the segment
  }
  return 0;
}

std::vector<uint8_t> with_junk_at(std::vector<uint8_t> jpg, size_t offset) {
  const std::vector<uint8_t> junk = {0x00, 0x13, 0x37, 0x42};
  jpg.insert(jpg.begin() + static_cast<long>(offset), junk.begin(), junk.end());
  return jpg;
}

}  // namespace

TEST(ImageDecodeCheck, ExtraneousBytesBeforeAMarkerDecodeLikeImreadWithAWarning) {
  const auto jpg =
      samdeblur::read_file_bytes(samdeblur::test::source_path("data/demo/photos/coffee.jpg"));
  const size_t dqt = marker_offset(jpg, 0xdb), sos = marker_offset(jpg, 0xda);
  ASSERT_GT(dqt, 0u);
  ASSERT_GT(sos, 0u);
  samdeblur::test::TempDir dir("jpeg_extraneous");
  struct Case {
    const char* name;
    size_t offset;
  };
  for (const Case& c : {Case{"between_segments.jpg", dqt}, Case{"before_sos.jpg", sos},
                        Case{"before_eoi.jpg", jpg.size() - 2}}) {
    const auto bytes = with_junk_at(jpg, c.offset);
    const std::string path = (dir / c.name).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    testing::internal::CaptureStderr();
    cv::Mat ours;
    EXPECT_NO_THROW(ours = io::read_image_bgr(path)) << c.name;
    const std::string log = testing::internal::GetCapturedStderr();
    const cv::Mat ref = cv::imread(path, cv::IMREAD_COLOR);
    ASSERT_FALSE(ref.empty()) << c.name;
    ASSERT_EQ(ours.size(), ref.size()) << c.name;
    EXPECT_EQ(cv::norm(ours, ref, cv::NORM_INF), 0.0) << c.name;
    if (c.offset != jpg.size() - 2) {  // before EOI the scan's bit reader may swallow the junk
      EXPECT_NE(log.find(path), std::string::npos) << c.name << ": " << log;
      EXPECT_NE(log.find("extraneous bytes"), std::string::npos) << c.name << ": " << log;
    }
  }
}
