#pragma once
// Helpers for the model tests: golden fixtures written by
// scripts/make_model_fixtures.py (official SAM-Deblur architectures).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "samdeblur/io/npy.h"

namespace samdeblur::models::testing {

inline const std::string kRegenerateHint =
    "regenerate with: PYTHONPATH=/tmp/ref/sam-deblur /usr/bin/python3 "
    "scripts/make_model_fixtures.py";

inline std::string fixture_path(const std::string& name) {
  return std::string(SAMDEBLUR_TEST_DATA) + "/models/" + name;
}

inline std::map<std::string, torch::Tensor> load_fixture(const std::string& name) {
  const auto path = fixture_path(name);
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing fixture " + path + "; " + kRegenerateHint);
  }
  return io::read_npz(path);
}

inline const nlohmann::json& key_file() {
  static const nlohmann::json doc = [] {
    std::ifstream in(fixture_path("keys.json"));
    if (!in) throw std::runtime_error("missing tests/data/models/keys.json; " + kRegenerateHint);
    auto j = nlohmann::json::parse(in);
    if (j.at("fixture_version").get<int>() != 1) {
      throw std::runtime_error("keys.json has an unexpected fixture_version; " + kRegenerateHint);
    }
    return j;
  }();
  return doc;
}

// Copies every "w.<key>" array into the module; fails listing unknown, missing
// and mis-shaped tensors.
inline void load_weights(torch::nn::Module& module,
                         const std::map<std::string, torch::Tensor>& arrays) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(/*recurse=*/true);
  std::set<std::string> missing;
  for (const auto& item : params) missing.insert(item.key());
  std::string problems;
  for (const auto& [name, value] : arrays) {
    if (name.rfind("w.", 0) != 0) continue;
    const auto key = name.substr(2);
    auto* param = params.find(key);
    if (param == nullptr) {
      problems += " unknown:" + key;
      continue;
    }
    missing.erase(key);
    if (param->sizes() != value.sizes()) {
      problems += " shape:" + key;
      continue;
    }
    param->copy_(value);
  }
  for (const auto& key : missing) problems += " missing:" + key;
  ASSERT_TRUE(problems.empty()) << "weight loading:" << problems;
}

// |actual - expected| <= tol everywhere; reports the worst element.
inline void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tol,
                         const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const auto diff =
      (actual.detach().to(torch::kCPU, torch::kDouble) - expected.to(torch::kDouble)).abs();
  const int64_t worst = diff.flatten().argmax().item<int64_t>();
  const double worst_diff = diff.flatten()[worst].item<double>();
  EXPECT_LE(worst_diff, tol) << what << ": worst |diff| " << worst_diff << " at flat index "
                             << worst << " (actual "
                             << actual.detach().flatten()[worst].item<double>() << ", expected "
                             << expected.flatten()[worst].item<double>() << ")";
}

}  // namespace samdeblur::models::testing
