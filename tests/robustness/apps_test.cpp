// Robustness of the apps (issue 8): bad input is refused clearly, with the
// offending file, key or flag named and a non-zero exit code, and no run
// leaves a half-written or mixed result behind. Each test runs the built
// executables (test::run_app) on copies of the tiny fixtures in a temp dir.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "samdeblur/core/file_lock.h"
#include "samdeblur/train/train_config.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace test = samdeblur::test;
using test::read_text;
using test::run_app;

namespace {

const std::string kData = test::data_path("eval");

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A copy of the tiny benchmark (input/, target/) and an sdb-eval config for the
// NAFNet fixture checkpoint on it, with save_img.
fs::path eval_setup(const fs::path& work) {
  fs::create_directories(work / "data");
  fs::copy(kData + "/input", work / "data" / "input", fs::copy_options::recursive);
  fs::copy(kData + "/target", work / "data" / "target", fs::copy_options::recursive);
  std::ostringstream y;
  y << "name: robust\nmodel_type: ImageRestorationModel\nscale: 1\nnum_gpu: 1\nmanual_seed: 10\n"
    << "datasets:\n  test:\n    name: tiny\n    type: PairedImageDataset\n"
    << "    dataroot_gt: " << (work / "data" / "target").string() << "\n"
    << "    dataroot_lq: " << (work / "data" / "input").string() << "\n"
    << "    io_backend:\n      type: disk\n"
    << "network_g:\n  type: NAFNetLocal\n  width: 8\n  enc_blk_nums: [1, 1]\n  middle_blk_num: 1\n"
    << "  dec_blk_nums: [1, 1]\n  train_size: [1, 3, 16, 16]\n"
    << "path:\n  pretrain_network_g: " << kData << "/checkpoints/NAFNet.pth\n"
    << "  strict_load_g: true\n"
    << "val:\n  save_img: true\n  grids: false\n  metrics:\n    psnr:\n      type: calculate_psnr\n"
    << "      crop_border: 0\n      test_y_channel: false\n";
  return test::write_text(work / "cfg.yml", y.str());
}

std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_text(e.path());
  return out;
}

// sdb-train arguments: the tiny training config pointed at the fixtures and `exp`.
std::vector<std::string> train_args(const fs::path& exp,
                                    const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"-q", "-c", test::source_path("configs/train/tiny/NAFNet.yml")};
  for (const auto& flag : test::set_flags(test::tiny_train_overrides(exp))) args.push_back(flag);
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

// A failed evaluation into a folder holding a finished run leaves that run
// untouched (no new image mixed with the old metrics.csv), and no staging
// folder; a later successful run replaces it whole and cleans stale temporaries.
TEST(Robustness, FailedEvalLeavesThePreviousResultUntouched) {
  const test::TempDir tmp("robust_staging");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  const fs::path out = work / "out";
  const std::vector<std::string> args = {"-q", "-c", cfg.string(), "-o", out.string()};
  auto r = run_app("sdb-eval", args);
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const auto before = folder_bytes(out);
  ASSERT_TRUE(before.count("metrics.csv"));
  ASSERT_TRUE(before.count("images/img_a.png"));

  // The third image cannot be decoded: the run fails naming it.
  { std::ofstream(work / "data" / "input" / "img_c.png", std::ios::trunc) << "not a png"; }
  std::vector<std::string> failing = args;
  failing.insert(failing.end(), {"--set", "val.mcr_threshold=1.0"});
  r = run_app("sdb-eval", failing);
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_TRUE(contains(r.output(), "img_c.png")) << r.output();
  EXPECT_TRUE(folder_bytes(out) == before) << "the previous result was modified";
  for (const auto& e : fs::directory_iterator(work))
    EXPECT_FALSE(contains(e.path().filename().string(), "out.")) << e.path();

  // A temporary of a killed writer (our naming, a dead PID) is removed by the next run.
  fs::copy_file(kData + "/input/img_c.png", work / "data" / "input" / "img_c.png",
                fs::copy_options::overwrite_existing);
  const fs::path stale = out / "images" / ("img_a.png.tmp." + std::to_string(test::dead_pid()));
  { std::ofstream(stale) << "partial"; }
  r = run_app("sdb-eval", args);
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_FALSE(fs::exists(stale));
  auto after = folder_bytes(out);
  EXPECT_EQ(after.size(), before.size());  // the same files (metrics.csv differs in its timings)
  for (const std::string name : {"images/img_a.png", "images/img_b.png", "images/img_c.png"})
    EXPECT_TRUE(after[name] == before.at(name)) << name;
}

// Every input is checked before the first output: a truncated third image and a
// damaged second target are both named (not only the first), the run fails, an earlier
// result stays untouched and a fresh output folder is not even created.
TEST(Robustness, DamagedInputsAreAllNamedBeforeAnyOutput) {
  const test::TempDir tmp("robust_precheck");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  const fs::path out = work / "out";
  auto r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const auto before = folder_bytes(out);

  const fs::path third = work / "data" / "input" / "img_c.png";
  std::string bytes = read_text(third);
  test::write_text(third, bytes.substr(0, bytes.size() * 3 / 5));
  const fs::path second_gt = work / "data" / "target" / "img_b.png";
  bytes = read_text(second_gt);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  test::write_text(second_gt, bytes);

  for (const fs::path& target : {out, work / "fresh"}) {
    r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "-o", target.string()});
    EXPECT_EQ(r.exit_code, 1) << r.output();
    EXPECT_TRUE(contains(r.output(), "2 of the 6 input files cannot be used")) << r.output();
    EXPECT_TRUE(contains(r.output(), third.string() + ": truncated or corrupt PNG")) << r.output();
    EXPECT_TRUE(contains(r.output(), second_gt.string() + ": truncated or corrupt PNG: CRC error"))
        << r.output();
  }
  EXPECT_TRUE(folder_bytes(out) == before) << "the previous result was modified";
  EXPECT_FALSE(fs::exists(work / "fresh"));
  for (const auto& e : fs::directory_iterator(work))
    EXPECT_FALSE(contains(e.path().filename().string(), ".staging-")) << e.path();
}

// -q prints the result line and errors only: no progress line, not even 0 %.
TEST(Robustness, QuietPrintsNoProgress) {
  const test::TempDir tmp("robust_quiet");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  const auto r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "-o", (work / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_TRUE(contains(r.output(), "tiny | 3 images")) << r.output();
  EXPECT_FALSE(contains(r.output(), "eval tiny [")) << r.output();
  EXPECT_FALSE(contains(r.output(), "ETA")) << r.output();
}

// Every file without a partner is named: a missing input, a dangling symlink,
// a FIFO and a folder named like an image, an input without a target.
TEST(Robustness, UnpairedFilesAreEachNamed) {
  const test::TempDir tmp("robust_pairing");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  const fs::path in = work / "data" / "input", gt = work / "data" / "target";
  fs::remove(in / "img_a.png");
  fs::remove(in / "img_b.png");
  fs::create_symlink(work / "nowhere.png", in / "img_b.png");
  fs::copy_file(gt / "img_c.png", gt / "img_d.png");
  ASSERT_EQ(::mkfifo((in / "img_d.png").c_str(), 0644), 0);
  fs::copy_file(gt / "img_c.png", gt / "img_e.png");
  fs::create_directories(in / "img_e.png");
  fs::copy_file(in / "img_c.png", in / "img_z.png");
  const auto r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "-o", (work / "out").string()});
  EXPECT_EQ(r.exit_code, 1) << r.output();
  for (const std::string& part : std::vector<std::string>{
           (gt / "img_a.png").string() + ": no lq image", (gt / "img_b.png").string(),
           "img_b.png is a dangling symlink", "img_d.png is a FIFO", "img_e.png is a folder",
           (in / "img_z.png").string() + ": no gt image partner"})
    EXPECT_TRUE(contains(r.output(), part)) << part << "\n" << r.output();
  EXPECT_FALSE(fs::exists(work / "out"));
}

// Config values that cannot work name their key (and the limit).
TEST(Robustness, BadConfigValuesNameTheKey) {
  const test::TempDir tmp("robust_keys");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  auto r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "--set", "network_g.width=1000000", "-o",
                                (work / "out").string()});
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_TRUE(contains(r.output(), "network_g.width")) << r.output();
  EXPECT_TRUE(contains(r.output(), "limit of 1024")) << r.output();
  EXPECT_FALSE(contains(r.output(), "allocate")) << r.output();

  std::string text = read_text(cfg);
  const std::string lq_line = "dataroot_lq: " + (work / "data" / "input").string();
  text.replace(text.find(lq_line), lq_line.size(), "dataroot_lq: ''");
  test::write_text(cfg, text);
  r = run_app("sdb-eval", {"-q", "-c", cfg.string(), "-o", (work / "out").string()});
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_TRUE(contains(r.output(), "datasets.test.dataroot_lq")) << r.output();
}

// Invalid numbers on a command line are refused (exit 2) before anything runs;
// an invalid device is a clear error (exit 1), never an uncaught exception.
TEST(Robustness, InvalidFlagsAreRefused) {
  const test::TempDir tmp("robust_flags");
  const fs::path work = tmp.path();
  const fs::path cfg = eval_setup(work);
  struct Case {
    std::string app;
    std::vector<std::string> args;
    std::string flag;
  };
  for (const Case& c : std::vector<Case>{
           {"sdb-eval", {"-c", cfg.string(), "--threads", "-1"}, "--threads"},
           {"sdb-train", test::words("-c x.yml --nproc-per-node 0"), "--nproc-per-node"},
           {"sdb-train", test::words("-c x.yml --threads -2"), "--threads"},
           {"sdb-bench", test::words("--repeat 0"), "--repeat"},
           {"sdb-bench", test::words("--threads -1"), "--threads"},
           {"sdb-synth", test::words("--photos x -o y --crop 0"), "--crop"},
           {"sdb-synth", test::words("--photos x -o y --train-per-photo -1"), "--train-per-photo"},
       }) {
    const auto r = run_app(c.app, c.args);
    std::string what = c.app;
    for (const auto& a : c.args) what += " " + a;
    what += "\n" + r.output();
    EXPECT_EQ(r.exit_code, 2) << what;
    EXPECT_TRUE(contains(r.output(), c.flag)) << what;
  }
  const auto r = run_app("sdb-bench", test::words("--device tpu --what map --repeat 1"));
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_TRUE(contains(r.output(), "'tpu' is not a device")) << r.output();
  EXPECT_FALSE(contains(r.output(), "terminate called")) << r.output();
}

// gt_size above a training image's size is refused naming the image.
TEST(Robustness, GtSizeLargerThanTrainingImagesIsRefused) {
  const test::TempDir tmp("robust_gtsize");
  const fs::path work = tmp.path();
  const auto r = run_app(
      "sdb-train", train_args(work / "exp",
                              test::words("--set datasets.train.gt_size=48 --set val.val_freq=0")));
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_TRUE(contains(r.output(), "smaller than datasets.train.gt_size = 48")) << r.output();
  EXPECT_TRUE(contains(r.output(), kData + "/target/img_")) << r.output();
}

// A second sdb-train into a folder in use is refused and touches nothing.
TEST(Robustness, SecondTrainerIntoTheSameFolderIsRefused) {
  const test::TempDir tmp("robust_lock");
  const fs::path work = tmp.path();
  const fs::path exp = work / "exp";
  fs::create_directories(exp);
  { std::ofstream(exp / "marker") << "first run"; }
  {
    // Stands in for a running first trainer (the lock is per open file, so
    // this process holding it refuses the child just as another trainer would).
    samdeblur::FileLock held(samdeblur::FileLock::lock_file_for_dir(exp.string()), "test");
    const auto r = run_app("sdb-train", train_args(exp));
    EXPECT_EQ(r.exit_code, 1) << r.output();
    EXPECT_TRUE(contains(r.output(), "experiment folder " + exp.string() + " is in use"))
        << r.output();
    EXPECT_TRUE(contains(r.output(), "PID " + std::to_string(::getpid()))) << r.output();
  }
  EXPECT_EQ(read_text(exp / "marker"), "first run");  // not archived
  int entries = 0;
  for (const auto& e : fs::directory_iterator(work)) (void)e, ++entries;
  EXPECT_EQ(entries, 2) << "exp and exp.lock only";
}

// The "official keys not used by sdb-train" list holds no key that training reads.
TEST(Robustness, IgnoredTrainKeysExcludeUsedOnes) {
  const auto cfg =
      samdeblur::train::load_train_config(test::source_path("configs/train/tiny/NAFNet.yml"),
                                          {"datasets.train.dataroot_gt=" + kData + "/target",
                                           "datasets.train.dataroot_lq=" + kData + "/input"});
  for (const std::string& used : std::vector<std::string>{
           "train", "logger", "dist_params", "num_gpu", "datasets.train.gt_size",
           "datasets.train.batch_size_per_gpu", "datasets.train.use_flip",
           "datasets.train.dataset_enlarge_ratio", "path.experiments_root", "val.val_freq"})
    EXPECT_EQ(std::count(cfg.ignored_keys.begin(), cfg.ignored_keys.end(), used), 0) << used;
  // Keys it really ignores are still listed.
  EXPECT_EQ(
      std::count(cfg.ignored_keys.begin(), cfg.ignored_keys.end(), "datasets.train.prefetch_mode"),
      1);
}
