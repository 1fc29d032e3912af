// The shared test scaffolding itself (tests/support/test_support.h, tiny_networks.h).
#include "support/test_support.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "samdeblur/dataset/paired.h"
#include "samdeblur/io/checkpoint.h"
#include "support/tiny_networks.h"

namespace fs = std::filesystem;
using namespace samdeblur;

TEST(TestSupport, TempDirIsFreshUniqueAndRemoved) {
  fs::path kept;
  {
    const test::TempDir a("support");
    const test::TempDir b("support");
    ASSERT_TRUE(fs::is_directory(a.path()));
    EXPECT_NE(a.path(), b.path());
    EXPECT_TRUE(fs::is_empty(a.path()));
    EXPECT_NE(a.str().find("TestSupport.TempDirIsFreshUniqueAndRemoved"), std::string::npos);
    fs::create_directories(a / "sub");
    std::ofstream(a / "sub" / "f.txt") << "x";
    EXPECT_EQ(test::read_text(a / "sub" / "f.txt"), "x");
    kept = a.path();
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TestSupport, FixturePathsAndHints) {
  EXPECT_TRUE(fs::exists(test::data_path("io")));
  EXPECT_TRUE(fs::exists(test::source_path("CMakeLists.txt")));
  try {
    test::fixture_path("io/no_such_fixture.npy", "regenerate with X");
    FAIL() << "a missing fixture was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_fixture.npy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("regenerate with X"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(test::check_fixture_version("models/keys.json", 1, "hint"));
  EXPECT_THROW(test::check_fixture_version("models/keys.json", 2, "hint"), std::runtime_error);
}

TEST(TestSupport, ErrorOfAndExpectClose) {
  EXPECT_EQ(test::error_of([] { throw ConfigError("bad key"); }), "bad key");
  EXPECT_NONFATAL_FAILURE(test::error_of([] {}), "expected an exception");
  test::expect_close(torch::ones({2, 3}), torch::ones({2, 3}) + 1e-7, 1e-6, "close");
  EXPECT_NONFATAL_FAILURE(
      test::expect_close(torch::zeros({4}), torch::tensor({0., 0., 0.5, 0.}), 0.1, "far"),
      "worst |diff| 0.5 at flat index 2");
}

TEST(TestSupport, RunAppCapturesExitCodeStdoutAndStderr) {
  if (!test::app_built("sdb-synth")) GTEST_SKIP() << "apps not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const auto help = test::run_app("sdb-synth", {"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output();
  EXPECT_NE(help.out.find("--photos"), std::string::npos) << help.out;
  const test::TempDir tmp("support");
  const auto bad = test::run_app(
      "sdb-synth", {"--photos", (tmp / "nowhere").string(), "--output", (tmp / "o").string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(bad.out, "");  // errors go to stderr (the library never writes to stdout)
  EXPECT_NE(bad.err.find("nowhere"), std::string::npos) << bad.err;
  // An argument with spaces reaches the app unchanged: no shell in between.
  const auto spaced = test::run_app(
      "sdb-synth", {"--photos", (tmp / "a b; echo hi").string(), "--output", (tmp / "o").string()});
  EXPECT_NE(spaced.err.find("a b; echo hi"), std::string::npos) << spaced.err;
}

TEST(TestSupport, SdbTestsDependsOnTheApps) {
  // add_dependencies(sdb-tests <apps>): whenever the apps are enabled, building
  // sdb-tests built every one of them.
  if (!test::app_built("sdb-eval")) GTEST_SKIP() << "apps not built (SAMDEBLUR_BUILD_APPS=OFF)";
  for (const char* app : {"sdb-eval", "sdb-train", "sdb-masks", "sdb-synth", "sdb-sam-bench"})
    EXPECT_TRUE(test::app_built(app)) << app;
}

TEST(TestSupport, RunProgramSetsTheEnvironmentWithoutAShell) {
  const auto r = test::run_program("/bin/sh", {"-c", "echo \"$OMP_NUM_THREADS:$SDB_X\""},
                                   {{"OMP_NUM_THREADS", "1"}, {"SDB_X", "a b"}});
  EXPECT_EQ(r.exit_code, 0) << r.output();
  EXPECT_EQ(r.out, "1:a b\n");
  EXPECT_EQ(test::kAppEnv.at("OMP_NUM_THREADS"), "1");
  const auto failed = test::run_program("/bin/sh", {"-c", "echo oops >&2; exit 3"});
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.err, "oops\n");
  EXPECT_EQ(test::run_program("/no/such/program", {}).exit_code, 127);
  EXPECT_EQ(test::words(" --a 1  --b x "), (std::vector<std::string>{"--a", "1", "--b", "x"}));
}

TEST(TestSupport, WriteTextCreatesFolders) {
  const test::TempDir tmp("support");
  const std::string path = test::write_text(tmp / "a" / "b" / "c.txt", "x\ny");
  EXPECT_EQ(path, (tmp / "a" / "b" / "c.txt").string());
  EXPECT_EQ(test::read_text(path), "x\ny");
  test::write_text(path, "z");  // replaces
  EXPECT_EQ(test::read_text(path), "z");
}

TEST(TestSupport, TinyFixtures) {
  const auto sam = test::tiny_sam_config();
  EXPECT_EQ(sam.model_type, "tiny");
  EXPECT_EQ(sam.encoder_embed_dim, 32);
  EXPECT_EQ(sam.image_size, 96);
  EXPECT_TRUE(fs::exists(test::tiny_sam_checkpoint()));
  const auto plain = test::tiny_train_overrides("/x/exp");
  EXPECT_EQ(plain.size(), 6u);
  EXPECT_NE(std::find(plain.begin(), plain.end(), "path.experiments_root=/x/exp"), plain.end());
  for (const auto& o : plain) {
    const auto path = o.substr(o.find('=') + 1);
    if (o.rfind("datasets.", 0) == 0 && o.find("dataroot") != std::string::npos) {
      EXPECT_TRUE(fs::is_directory(path)) << o;
    }
  }
  const auto masked = test::tiny_train_overrides("/x/exp", /*masks=*/true);
  ASSERT_EQ(masked.size(), 8u);
  EXPECT_TRUE(fs::is_directory(masked[6].substr(masked[6].find('=') + 1))) << masked[6];
}

TEST(TestSupport, TinyDatasetOptionsListTheTinyBenchmark) {
  const auto grouped = test::tiny_dataset_options("PairedImageGroupMaskDataset");
  EXPECT_EQ(grouped.name, "tiny");
  const auto samples = dataset::list_samples(grouped);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(fs::path(samples[0].mask).parent_path().filename(), "grouped_masks");
  const auto cat = test::tiny_dataset_options("PairedImageMaskDataset", "/x");
  EXPECT_EQ(cat.dataroot_lq, "/x/input");
  EXPECT_EQ(cat.dataroot_mask, "/x/input_mask");
  EXPECT_TRUE(test::tiny_dataset_options("PairedImageDataset").dataroot_mask.empty());
}

// The four fixture networks are the tiny network (with mask: true for MaskNAFNet): every
// parameter of its checkpoint has the name and shape of the tiny network's, and the
// other fixtures they name (expected outputs, mask folders) are there.
TEST(TestSupport, FixtureNetworksAreTheTinyNetworkOfTheirCheckpoints) {
  const auto& networks = test::fixture_networks();
  ASSERT_EQ(networks.size(), 4u);
  const auto expected =
      nlohmann::json::parse(test::read_text(test::data_path("eval/expected.json")));
  for (const auto& n : networks) {
    SCOPED_TRACE(n.name);
    EXPECT_EQ(&test::fixture_network(n.name), &n);
    EXPECT_TRUE(expected["models"].contains(n.name));
    if (!n.mask_dir.empty()) {
      EXPECT_TRUE(fs::is_directory(test::data_path("eval/" + n.mask_dir)));
    }
    auto o = test::tiny_network_options(n.type);
    EXPECT_NO_THROW(o.validate());
    o.mask = n.extra.find("mask: true") != std::string::npos;
    const auto net = models::build_network(o);
    std::map<std::string, std::vector<int64_t>> want, got;
    for (const auto& p : net->named_parameters()) want[p.key()] = p.value().sizes().vec();
    const auto ckpt = test::data_path("eval/checkpoints/" + n.name + ".pth");
    for (const auto& [key, value] : io::load_state_dict_file(ckpt)) got[key] = value.sizes().vec();
    EXPECT_EQ(got, want);
  }
  ::testing::TestParamInfo<test::FixtureNetwork> info(networks[3], 3);
  EXPECT_EQ(test::fixture_network_test_name(info), "SegNAFNet_plain");
  EXPECT_THROW(test::fixture_network("UNet"), std::runtime_error);
}

TEST(TestSupport, StartAppAndWaitForExitTellExitFromSignal) {
  if (!test::app_built("sdb-synth")) GTEST_SKIP() << "apps not built (SAMDEBLUR_BUILD_APPS=OFF)";
  bool killed = true;
  EXPECT_EQ(test::wait_for_exit(test::start_app("sdb-synth", {"--help"}), &killed), 0);
  EXPECT_FALSE(killed);
  const auto sleeper = test::run_program("/bin/sh", {"-c", "kill -TERM $$"});
  EXPECT_TRUE(sleeper.killed);
  EXPECT_EQ(sleeper.exit_code, 128 + SIGTERM);
}

TEST(TestSupport, SetFlagsAndVersionedJson) {
  EXPECT_EQ(test::set_flags({"a.b=1", "c=2"}),
            (std::vector<std::string>{"--set", "a.b=1", "--set", "c=2"}));
  EXPECT_TRUE(test::set_flags({}).empty());
  const auto meta = test::check_fixture_version("models/keys.json", 1, "hint");
  EXPECT_EQ(meta.at("fixture_version").get<int>(), 1);
  EXPECT_EQ(meta, test::load_json_fixture("models/keys.json", "hint"));
  EXPECT_THROW(test::load_json_fixture("models/none.json", "hint"), std::runtime_error);
}

TEST(TestSupport, MutationsAreDeterministicAndStayInTheSpan) {
  const std::vector<uint8_t> good(1000, 0);
  std::vector<std::vector<uint8_t>> a, b;
  test::for_each_mutation(good, 3, 20, 4, 5,
                          [&](const std::vector<uint8_t>& m) { a.push_back(m); });
  test::for_each_mutation(good, 3, 20, 4, 5,
                          [&](const std::vector<uint8_t>& m) { b.push_back(m); });
  ASSERT_EQ(a.size(), 20u);
  EXPECT_EQ(a, b);
  int truncated = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() < good.size()) ++truncated;
    EXPECT_EQ(a[i].size() < good.size(), i % 5 == 0) << i;
  }
  EXPECT_EQ(truncated, 4);
  test::for_each_mutation(
      good, 4, 50, 8, 1000,
      [&](const std::vector<uint8_t>& m) {
        for (std::size_t k = 10; k < m.size(); ++k) ASSERT_EQ(m[k], 0) << k;
      },
      /*span=*/10);
}
