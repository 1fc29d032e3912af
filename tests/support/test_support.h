#pragma once
// Scaffolding shared by the tests: temporary folders, fixture paths, running the
// apps, error messages and tensor comparisons. Paths come from the compile
// definitions of sdb-tests (CMakeLists.txt): SAMDEBLUR_TEST_DATA (tests/data),
// SAMDEBLUR_BIN_DIR (the built apps) and SAMDEBLUR_SOURCE_DIR (the repository).
#include <gtest/gtest.h>
#include <sys/types.h>
#include <torch/torch.h>

#include <opencv2/core.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "samdeblur/core/error.h"
#include "samdeblur/dataset/options.h"
#include "samdeblur/sam/predictor.h"

namespace samdeblur::test {

// ---------------------------------------------------------------- folders --

// A fresh, empty folder below the system temp folder, unique to this process and
// object (tag and the running test's name are in its name for debugging); removed
// with everything in it when the object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& rel) const { return path_ / rel; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// --------------------------------------------------------------- fixtures --

// SAMDEBLUR_TEST_DATA/<relative> (not checked).
std::string data_path(const std::string& relative);
// SAMDEBLUR_SOURCE_DIR/<relative> (not checked).
std::string source_path(const std::string& relative);
// data_path(relative), throwing std::runtime_error "missing fixture <path>; <hint>"
// when the file does not exist (`hint` says how to regenerate it).
std::string fixture_path(const std::string& relative, const std::string& hint);
// The arrays of the .npz fixture data_path(relative); missing file as fixture_path.
std::map<std::string, torch::Tensor> load_npz_fixture(const std::string& relative,
                                                      const std::string& hint);
// The JSON fixture data_path(relative), parsed; missing file as fixture_path.
nlohmann::json load_json_fixture(const std::string& relative, const std::string& hint);
// Throws with the hint unless the JSON file data_path(relative) has
// "fixture_version": expected (the version its generator script writes); returns
// the parsed file.
nlohmann::json check_fixture_version(const std::string& relative, int expected,
                                     const std::string& hint);

// The whole file as text ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);
// Writes `text` (bytes as given) to `path`, creating its folders; returns path as a string.
std::string write_text(const std::filesystem::path& path, const std::string& text);

// An h x w BGR uint8 image with value (3x + 5y + 70c) mod 256 at (y, x, channel c):
// the test image of scripts/make_amg_fixtures.py.
cv::Mat ramp_image(int h, int w);

// The tiny benchmark of tests/data/eval (or a copy of its layout under `root`) as a
// dataset of `type`: key "test", name "tiny", lq from input/, gt from target/, and
// the mask folder the type reads (grouped_masks/ for PairedImageGroupMaskDataset,
// input_mask/ for PairedImageMaskDataset, none otherwise).
dataset::DatasetOptions tiny_dataset_options(const std::string& type, const std::string& root = "");

// The tiny random-weight SAM of tests/data/sam/model (its config from meta.json["tiny"],
// written by scripts/make_sam_fixtures.py) and its checkpoint tiny_sam.pth.
sam::SamConfig tiny_sam_config();
std::string tiny_sam_checkpoint();

// `--set` overrides that point configs/train/tiny/<variant>.yml at the tiny benchmark
// of tests/data/eval (with its grouped masks when `masks`), one data-loading worker
// and the run folder experiments_root.
std::vector<std::string> tiny_train_overrides(const std::filesystem::path& experiments_root,
                                              bool masks = false);

// ------------------------------------------------------------------- apps --

struct AppResult {
  int exit_code = -1;   // the exit status, or 128 + signal when killed
  bool killed = false;  // ended by a signal rather than by exiting
  std::string out;      // everything written to stdout
  std::string err;      // everything written to stderr
  std::string output() const { return out + err; }
};

// Variables set for a child on top of this process's environment.
using Env = std::map<std::string, std::string>;
// What the apps run with by default: one OpenMP thread, so parallel test processes
// do not oversubscribe the cores.
inline const Env kAppEnv = {{"OMP_NUM_THREADS", "1"}};

// SAMDEBLUR_BIN_DIR/<name>.
std::string app_path(const std::string& name);
// True when the app is built (false with SAMDEBLUR_BUILD_APPS=OFF: tests skip).
bool app_built(const std::string& name);
// Runs the executable `program` with `args` (no shell involved) and waits for it.
AppResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const Env& env = {});
// run_program(app_path(name), args, env).
AppResult run_app(const std::string& name, const std::vector<std::string>& args,
                  const Env& env = kAppEnv);
// Starts app_path(name) with `args` in the background (its output goes to this
// process's stdout and stderr) and returns its PID, for signals and wait_for_exit.
pid_t start_app(const std::string& name, const std::vector<std::string>& args,
                const Env& env = kAppEnv);
// Waits for the child `pid`: its exit status, or 128 + signal when killed (then
// *killed, when given, is set to true; false otherwise).
int wait_for_exit(pid_t pid, bool* killed = nullptr);
// run_program("/usr/bin/python3", args).
AppResult run_python(const std::vector<std::string>& args);
// {"--set", overrides[0], "--set", overrides[1], ...}.
std::vector<std::string> set_flags(const std::vector<std::string>& overrides);
// `text` split at spaces (no quoting): for tables of command-line flags in tests.
std::vector<std::string> words(const std::string& text);

// The PID of a child process that has exited and been reaped: "a crashed run".
long dead_pid();

// True when /usr/bin/python3 exists and `import <module>` works (cached per module);
// tests that cross-check with Python skip otherwise.
bool python_has(const std::string& module);

// ------------------------------------------------------------ corruption --

// Mutation fuzzing, deterministic for `seed`: calls f(bytes) `iterations` times, each
// with a copy of `good` in which 1..max_flips random bytes (among the first
// `span`, all when 0) are overwritten and which, every `truncate_every`-th
// iteration (the first included), is cut to a random shorter length.
void for_each_mutation(const std::vector<uint8_t>& good, uint32_t seed, int iterations,
                       int max_flips, int truncate_every,
                       const std::function<void(const std::vector<uint8_t>&)>& f,
                       std::size_t span = 0);

// ----------------------------------------------------------------- errors --

// The message of the exception of type E that f() throws; a test failure (and "")
// when it throws nothing.
template <typename E = Error, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

// ---------------------------------------------------------------- tensors --

// |actual - expected| <= tol everywhere (compared in double on the CPU); a
// failure reports the worst element, its flat index and both values.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tol,
                  const std::string& what);

}  // namespace samdeblur::test
