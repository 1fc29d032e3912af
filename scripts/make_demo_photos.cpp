// Regenerates data/demo/photos/ from scikit-image 0.19.3's bundled sample photos
// (Debian python3-skimage; see data/demo/SOURCES.md for origins and licences).
//
//   cd /tmp/skim && apt-get download python3-skimage && dpkg -x python3-skimage_*.deb x
//   g++ -O2 -std=c++17 scripts/make_demo_photos.cpp $(pkg-config --cflags --libs opencv4) \
//       -o /tmp/make_demo_photos
//   /tmp/make_demo_photos /tmp/skim/x/usr/lib/python3/dist-packages/skimage/data data/demo/photos
//
// Each photo is (optionally) centre-cropped, then shrunk with INTER_AREA by
// max(384 / long side, 288 / short side) (never enlarged), so the long side is
// about 384 and the short side at least 288 (room for a 256x256 test crop plus
// the camera-shake margin), and written as quality-95 JPEG.
#include <algorithm>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SKIMAGE_DATA_DIR OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  struct Photo {
    const char *source, *name;
    int crop;  // centre square crop side, 0 = whole image
  };
  const std::vector<Photo> photos = {{"astronaut.png", "astronaut", 0},
                                     {"chelsea.png", "chelsea", 0},
                                     {"coffee.png", "coffee", 0},
                                     {"rocket.jpg", "rocket", 0},
                                     {"hubble_deep_field.jpg", "hubble_deep_field", 576}};
  for (const auto& p : photos) {
    const std::string in = std::string(argv[1]) + "/" + p.source;
    cv::Mat img = cv::imread(in, cv::IMREAD_COLOR);
    if (img.empty()) {
      std::fprintf(stderr, "%s: cannot read\n", in.c_str());
      return 1;
    }
    if (p.crop > 0) {
      const int s = std::min({p.crop, img.rows, img.cols});
      img = img(cv::Rect((img.cols - s) / 2, (img.rows - s) / 2, s, s)).clone();
    }
    const int lo = std::min(img.rows, img.cols), hi = std::max(img.rows, img.cols);
    const double f = std::min(1.0, std::max(384.0 / hi, 288.0 / lo));
    cv::Mat out = img;
    if (f < 1.0)
      cv::resize(img, out, cv::Size(int(img.cols * f + 0.5), int(img.rows * f + 0.5)), 0, 0,
                 cv::INTER_AREA);
    const std::string path = std::string(argv[2]) + "/" + p.name + ".jpg";
    if (!cv::imwrite(path, out, {cv::IMWRITE_JPEG_QUALITY, 95})) {
      std::fprintf(stderr, "%s: cannot write\n", path.c_str());
      return 1;
    }
    std::printf("%s: %dx%d -> %s %dx%d\n", p.source, img.cols, img.rows, path.c_str(), out.cols,
                out.rows);
  }
  return 0;
}
