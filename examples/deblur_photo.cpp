// Deblurs one photo with a SAM-Deblur / NAFNet checkpoint through the public
// samdeblur::Deblurrer API (the library behind sdb-deblur):
//   deblur_photo CHECKPOINT IN.jpg OUT.png [superpixels|SAM_CHECKPOINT]
// The network is recognised from the checkpoint; SegNAFNet and CAT checkpoints
// need the masks argument. Built by examples/CMakeLists.txt.
#include <samdeblur/deblur/deblurrer.h>

#include <iostream>
#include <opencv2/imgcodecs.hpp>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: deblur_photo CHECKPOINT IN OUT [superpixels|SAM_CHECKPOINT]\n";
    return 2;
  }
  try {
    samdeblur::Deblurrer::Options options;
    options.checkpoint = argv[1];
    if (argc > 4)
      options.masks.type = std::string(argv[4]) == "superpixels" ? "superpixels" : "sam";
    if (options.masks.type == "sam") options.masks.checkpoint = argv[4];
    samdeblur::Deblurrer deblurrer(options);
    cv::imwrite(argv[3], deblurrer.deblur(cv::imread(argv[2], cv::IMREAD_COLOR)));
  } catch (const std::exception& e) {
    std::cerr << "deblur_photo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
