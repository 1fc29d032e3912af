// The measurements behind the tiling defaults (README, "Deblurring photos"):
// PSNR between tiled and whole-image outputs of the GoPro-size networks (width
// 32, enc [1, 1, 1, 28]) with random weights on the demo photos, plain and TLC.
// Disabled (minutes of CPU); run explicitly:
//   OMP_NUM_THREADS=2 build/bin/sdb-tests --gtest_also_run_disabled_tests
//       --gtest_filter='DeblurFigures.*'
// SAMDEBLUR_FIGURES_DIR=D also writes D/<type>.pth (the random checkpoints) and
// D/big/photo.png (a 6000 x 4000 upscaled photo) for the peak-memory run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <opencv2/imgproc.hpp>

#include "samdeblur/deblur/deblurrer.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;

std::string gopro_checkpoint(const fs::path& dir, const std::string& type) {
  samdeblur::models::NetworkOptions o;
  o.type = type;
  o.width = 32;
  o.enc_blk_nums = {1, 1, 1, 28};
  o.dec_blk_nums = {1, 1, 1, 1};
  torch::manual_seed(0);
  const auto net = samdeblur::models::build_network(o);
  samdeblur::io::StateDict sd;
  // The official init sets every NAFBlock's beta and gamma to zero (each block is then
  // the identity and attention plays no part): draw them too, as training would.
  for (const auto& p : net->named_parameters()) {
    torch::Tensor t = p.value().detach().clone();
    if (p.key().size() > 5 && (p.key().rfind(".beta") == p.key().size() - 5 ||
                               p.key().rfind(".gamma") == p.key().size() - 6))
      t = torch::randn_like(t) * 0.2;
    sd.emplace_back(p.key(), t);
  }
  const std::string path = (dir / (type + ".pth")).string();
  samdeblur::io::save_state_dict_file(path, sd);
  return path;
}

}  // namespace

TEST(DeblurFigures, DISABLED_TiledAgainstWholeImage) {
  const samdeblur::test::TempDir tmp("figures");
  const char* keep = std::getenv("SAMDEBLUR_FIGURES_DIR");
  const fs::path dir = keep ? fs::path(keep) : tmp.path();
  fs::create_directories(dir);
  const std::string plain = gopro_checkpoint(dir, "NAFNet");
  std::vector<std::pair<std::string, cv::Mat>> photos;
  for (const auto& e : fs::directory_iterator(samdeblur::test::source_path("data/demo/photos")))
    photos.emplace_back(e.path().stem().string(), samdeblur::io::read_image_bgr(e.path().string()));
  std::sort(photos.begin(), photos.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  if (std::getenv("SAMDEBLUR_FIGURES_FILES_ONLY")) return;  // checkpoint for sdb-deblur runs
  if (keep) {
    cv::Mat big;
    cv::resize(photos.front().second, big, cv::Size(6000, 4000), 0, 0, cv::INTER_CUBIC);
    samdeblur::io::write_image_atomic((dir / "big" / "photo.png").string(), big);
  }
  struct Config {
    int scale;
    int64_t tile, overlap;
  };
  const std::vector<Config> configs = {{1, 128, 16}, {1, 128, 32}, {1, 192, 32}, {1, 256, 32},
                                       {1, 256, 64}, {2, 256, 32}, {2, 384, 64}, {2, 512, 64}};
  for (const bool tlc : {false, true}) {
    samdeblur::Deblurrer::Options o;
    o.checkpoint = plain;
    o.tlc = tlc;
    o.tiles.tile = 0;
    samdeblur::Deblurrer whole(o);
    std::map<int, std::vector<cv::Mat>> reference;  // per scale, per photo
    for (const int scale : {1, 2})
      for (const auto& [name, img] : photos) {
        cv::Mat in = img;
        if (scale > 1) cv::resize(img, in, cv::Size(), scale, scale, cv::INTER_CUBIC);
        reference[scale].push_back(whole.deblur(in));
      }
    for (const auto& c : configs) {
      o.tiles = {c.tile, c.overlap};
      samdeblur::Deblurrer tiled(o);
      std::string row = fmt::format("{} | {} | {} / {} |", tlc ? "NAFNetLocal" : "NAFNet",
                                    c.scale == 1 ? "photos" : "photos x2", c.tile, c.overlap);
      double worst = 1e9, sum = 0;
      for (std::size_t k = 0; k < photos.size(); ++k) {
        cv::Mat in = photos[k].second;
        if (c.scale > 1) cv::resize(in, in, cv::Size(), c.scale, c.scale, cv::INTER_CUBIC);
        const double p =
            samdeblur::metrics::calculate_psnr(tiled.deblur(in), reference[c.scale][k], 0);
        worst = std::min(worst, p);
        sum += p;
      }
      std::cout << row << fmt::format(" {:.2f} | {:.2f} |", sum / photos.size(), worst)
                << std::endl;
    }
  }
}
