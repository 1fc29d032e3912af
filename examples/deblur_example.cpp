// Builds a small NAFNet with random weights, runs it on a synthetic image and
// prints the PSNR of its output against the input (examples/CMakeLists.txt).
#include <samdeblur/io/image.h>
#include <samdeblur/metrics/psnr_ssim.h>
#include <samdeblur/models/network.h>
#include <iostream>

int main() {
  samdeblur::models::NetworkOptions options;  // type NAFNet, width 16
  options.enc_blk_nums = {1, 1};
  options.dec_blk_nums = {1, 1};
  const auto net = samdeblur::models::build_network(options);
  net->eval();
  const cv::Mat image(32, 48, CV_8UC3, cv::Scalar(40, 120, 200));
  torch::NoGradGuard no_grad;
  const auto output = net->forward(samdeblur::io::image_to_tensor(image).unsqueeze(0));
  const cv::Mat restored = samdeblur::io::tensor_to_image(output);
  std::cout << "samdeblur example: " << restored.cols << "x" << restored.rows << ", psnr "
            << samdeblur::metrics::calculate_psnr(restored, image, 0) << " dB\n";
  return 0;
}
