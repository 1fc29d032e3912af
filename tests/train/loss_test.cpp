// PSNRLoss against the official class (tests/data/train/loss.npz, written by
// scripts/make_train_fixtures.py from basicsr/models/losses/losses.py).
#include "samdeblur/train/loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace st = samdeblur::train;

namespace {

constexpr const char* kRegenerate =
    "regenerate with: /usr/bin/python3 scripts/make_train_fixtures.py /tmp/ref/sam-deblur";

const std::map<std::string, torch::Tensor>& fixture() {
  static const auto arrays = [] {
    samdeblur::test::check_fixture_version("train/meta.json", 1, kRegenerate);
    return samdeblur::test::load_npz_fixture("train/loss.npz", kRegenerate);
  }();
  return arrays;
}

}  // namespace

TEST(PsnrLoss, MatchesOfficialValuesAndGradients) {
  const auto& f = fixture();
  for (bool to_y : {false, true}) {
    for (double w : {1.0, 0.5}) {
      const std::string key =
          std::string("y") + (to_y ? "1" : "0") + (w == 1.0 ? "_w1.0" : "_w0.5");
      auto pred = f.at("pred").clone().requires_grad_(true);
      const auto loss = st::psnr_loss(pred, f.at("target"), w, to_y);
      loss.backward();
      const float want = f.at("loss_" + key).item<float>();
      EXPECT_NEAR(loss.item<float>(), want, 1e-6 * std::abs(want)) << key;
      const auto diff = (pred.grad() - f.at("grad_" + key)).abs();
      const double tol = 1e-5 * f.at("grad_" + key).abs().max().item<double>();
      EXPECT_LE(diff.max().item<double>(), tol)
          << key << ": worst gradient element at flat index " << diff.argmax().item<int64_t>();
    }
  }
}

TEST(PsnrLoss, KnownValueAndErrors) {
  // MSE 0.01 for every image -> 10 / ln 10 * ln(0.01 + 1e-8) = -20.0000004 dB.
  const auto pred = torch::zeros({2, 3, 4, 4});
  const auto target = torch::full({2, 3, 4, 4}, 0.1);
  EXPECT_NEAR(st::psnr_loss(pred, target).item<double>(), 10.0 * std::log10(0.01 + 1e-8), 1e-4);
  EXPECT_NEAR(st::psnr_loss(pred, target, 0.5).item<double>(), 5.0 * std::log10(0.01 + 1e-8), 1e-4);
  EXPECT_THROW(st::psnr_loss(torch::zeros({3, 4, 4}), torch::zeros({3, 4, 4})), c10::Error);
  EXPECT_THROW(st::psnr_loss(pred, torch::zeros({2, 3, 4, 5})), c10::Error);
  EXPECT_THROW(st::psnr_loss(torch::zeros({1, 4, 2, 2}), torch::zeros({1, 4, 2, 2}), 1.0, true),
               c10::Error);
}
