// The measurements behind the tiling defaults (README, "Deblurring photos"):
// PSNR between tiled and whole-image outputs of the GoPro-size networks (width
// 32, enc [1, 1, 1, 28]) with random weights on the demo photos, plain and TLC.
// Disabled (minutes of CPU); run explicitly:
//   OMP_NUM_THREADS=2 build/bin/sdb-tests --gtest_also_run_disabled_tests
//       --gtest_filter='DeblurFigures.*'
// SAMDEBLUR_FIGURES_DIR=D also writes D/NAFNet.pth, D/SegNAFNet.pth (the random
// checkpoints) and D/big/photo.png (astronaut upscaled to 6000 x 4000) for the
// peak-memory runs; with SAMDEBLUR_FIGURES_FILES_ONLY=1 nothing else.
// DeblurFigures.DISABLED_LargeImagesTiledAgainstWholeImage measures 256-768 px tiles
// on upscaled photos: scripts/tiling_figures.sh runs it with the peak RSS per tile.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <opencv2/imgproc.hpp>
#include <sstream>

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
  o.seg_channel = 2;  // SegNAFNet only, as options/test/GoPro/SegNAFNet.yml
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
  if (keep) {
    gopro_checkpoint(dir, "SegNAFNet");  // for the sdb-deblur --sam run
    cv::Mat big;
    cv::resize(photos.front().second, big, cv::Size(6000, 4000), 0, 0, cv::INTER_CUBIC);
    samdeblur::io::write_image_atomic((dir / "big" / "photo.png").string(), big);
  }
  if (std::getenv("SAMDEBLUR_FIGURES_FILES_ONLY")) return;  // files for sdb-deblur runs
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
namespace {

// "a,b,c" -> {"a", "b", "c"}; `fallback` when the variable is unset or empty.
std::vector<std::string> env_list(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  std::stringstream in(v && *v ? std::string(v) : fallback);
  std::vector<std::string> out;
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "AxB" -> {A, B} (AxB: width x height, or tile / overlap with '/').
std::pair<int64_t, int64_t> parse_pair(const std::string& s, char sep) {
  const auto at = s.find(sep);
  if (at == std::string::npos)
    throw std::runtime_error("expected A" + std::string(1, sep) + "B, got " + s);
  return {std::stoll(s.substr(0, at)), std::stoll(s.substr(at + 1))};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Tile sizes 256..768 on photos upscaled to 1.5 and 2.8 megapixels (the demo photos
// are smaller than a 512 tile): PSNR of tiled against whole-image output for the
// plain, the TLC and the SegNAFNet (MAP unit, superpixel label map of the whole
// image) networks, and the time per configuration. scripts/tiling_figures.sh runs
// it and adds the peak RSS per tile size (separate processes). Environment:
//   SAMDEBLUR_FIGURES_SIZES   WxH list (default 1536x1024,2048x1365)
//   SAMDEBLUR_FIGURES_NETS    NAFNet (--no-tlc), NAFNetLocal, SegNAFNetLocal
//   SAMDEBLUR_FIGURES_PHOTOS  demo photo stems (default chelsea: the worst at 128-256 px)
//   SAMDEBLUR_FIGURES_TILES   tile/overlap list (default 256..768 x 32, 64, 128)
//   SAMDEBLUR_FIGURES_DIR     keeps the checkpoints and writes DIR/large/<stem>_<W>x<H>.png
TEST(DeblurFigures, DISABLED_LargeImagesTiledAgainstWholeImage) {
  const samdeblur::test::TempDir tmp("figures");
  const char* keep = std::getenv("SAMDEBLUR_FIGURES_DIR");
  const fs::path dir = keep ? fs::path(keep) : tmp.path();
  fs::create_directories(dir / "large");
  const auto sizes = env_list("SAMDEBLUR_FIGURES_SIZES", "1536x1024,2048x1365");
  const auto nets = env_list("SAMDEBLUR_FIGURES_NETS", "NAFNet,NAFNetLocal,SegNAFNetLocal");
  const auto stems = env_list("SAMDEBLUR_FIGURES_PHOTOS", "chelsea");
  const auto tiles = env_list("SAMDEBLUR_FIGURES_TILES",
                              "256/32,256/64,256/128,384/32,384/64,384/128,512/32,512/64,512/128,"
                              "768/32,768/64,768/128");
  std::vector<std::pair<std::string, cv::Mat>> photos;  // (stem_WxH, upscaled photo)
  for (const auto& size : sizes) {
    const auto [w, h] = parse_pair(size, 'x');
    for (const auto& stem : stems) {
      const cv::Mat img = samdeblur::io::read_image_bgr(
          samdeblur::test::source_path("data/demo/photos/" + stem + ".jpg"));
      cv::Mat big;
      cv::resize(img, big, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0,
                 cv::INTER_CUBIC);
      const std::string name = stem + "_" + size;
      samdeblur::io::write_image_atomic((dir / "large" / (name + ".png")).string(), big);
      photos.emplace_back(name, big);
    }
  }
  std::cout << "| network | photo | tile / overlap | tiles | PSNR tiled vs whole (dB) | seconds |\n"
            << "|---|---|---|---|---|---|" << std::endl;
  for (const auto& net : nets) {
    const bool seg = net.rfind("Seg", 0) == 0;
    samdeblur::Deblurrer::Options o;
    o.checkpoint = gopro_checkpoint(dir, seg ? "SegNAFNet" : "NAFNet");
    o.tlc = net.size() > 5 && net.substr(net.size() - 5) == "Local";
    if (seg) o.masks.type = "superpixels";
    for (const auto& [name, img] : photos) {
      o.tiles.tile = 0;
      auto t0 = std::chrono::steady_clock::now();
      const samdeblur::Deblurrer::Result whole = samdeblur::Deblurrer(o).deblur(img, cv::Mat());
      std::cout << fmt::format("| {} | {} | whole | 1 | reference | {:.1f} |", net, name,
                               seconds_since(t0))
                << std::endl;
      for (const auto& t : tiles) {
        const auto [tile, overlap] = parse_pair(t, '/');
        o.tiles = {tile, overlap};
        samdeblur::Deblurrer tiled(o);
        t0 = std::chrono::steady_clock::now();
        const cv::Mat out = tiled.deblur(img, whole.label_map).image;  // the same masks
        const double s = seconds_since(t0);
        const std::size_t n =  // as infer_tiled: starts aligned to the padding multiple 16
            samdeblur::deblur::tile_starts(img.rows, tile, overlap, 16).size() *
            samdeblur::deblur::tile_starts(img.cols, tile, overlap, 16).size();
        std::cout << fmt::format("| {} | {} | {} / {} | {} | {:.2f} | {:.1f} |", net, name, tile,
                                 overlap, n,
                                 samdeblur::metrics::calculate_psnr(out, whole.image, 0), s)
                  << std::endl;
      }
    }
  }
}
