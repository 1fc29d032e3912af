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

#include "samdeblur/models/network.h"
#include "support/test_support.h"

namespace samdeblur::models::testing {

using samdeblur::test::expect_close;

inline const std::string kRegenerateHint =
    "regenerate with: PYTHONPATH=/tmp/ref/sam-deblur /usr/bin/python3 "
    "scripts/make_model_fixtures.py";

inline std::map<std::string, torch::Tensor> load_fixture(const std::string& name) {
  return samdeblur::test::load_npz_fixture("models/" + name, kRegenerateHint);
}

inline const nlohmann::json& key_file() {
  static const nlohmann::json doc = [] {
    samdeblur::test::check_fixture_version("models/keys.json", 1, kRegenerateHint);
    std::ifstream in(samdeblur::test::data_path("models/keys.json"));
    return nlohmann::json::parse(in);
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

// The network of `options`, with the fixture's train_size (TLC) when it has one and
// the fixture's weights.
inline DeblurNet build_with_fixture(NetworkOptions options,
                                    const std::map<std::string, torch::Tensor>& data) {
  if (data.count("train_size")) {
    const auto ts = data.at("train_size").to(torch::kLong);
    options.train_size = {ts[0].item<int64_t>(), ts[1].item<int64_t>(), ts[2].item<int64_t>(),
                          ts[3].item<int64_t>()};
  }
  auto net = build_network(options);
  load_weights(*net, data);
  return net;
}

}  // namespace samdeblur::models::testing
