#pragma once
// Scaffolding shared by the tests: temporary folders, fixture paths, running the
// apps, error messages and tensor comparisons. Paths come from the compile
// definitions of sdb-tests (CMakeLists.txt): SAMDEBLUR_TEST_DATA (tests/data),
// SAMDEBLUR_BIN_DIR (the built apps) and SAMDEBLUR_SOURCE_DIR (the repository).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "samdeblur/core/error.h"

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
// Throws with the hint unless the JSON file data_path(relative) has
// "fixture_version": expected (the version its generator script writes).
void check_fixture_version(const std::string& relative, int expected, const std::string& hint);

// The whole file as text ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// ------------------------------------------------------------------- apps --

struct AppResult {
  int exit_code = -1;  // the exit status, or 128 + signal when killed
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
  std::string output() const { return out + err; }
};

// SAMDEBLUR_BIN_DIR/<name>.
std::string app_path(const std::string& name);
// True when the app is built (false with SAMDEBLUR_BUILD_APPS=OFF: tests skip).
bool app_built(const std::string& name);
// Runs app_path(name) with `args` (no shell involved) and waits for it.
AppResult run_app(const std::string& name, const std::vector<std::string>& args);

// True when /usr/bin/python3 exists and `import <module>` works (cached per module);
// tests that cross-check with Python skip otherwise.
bool python_has(const std::string& module);

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
