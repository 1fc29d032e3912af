#include "test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "samdeblur/io/npy.h"

namespace fs = std::filesystem;

namespace samdeblur::test {

namespace {

std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return "none";
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return name;
}

}  // namespace

TempDir::TempDir(const std::string& tag) {
  std::string pattern =
      (fs::temp_directory_path() / ("sdb_" + tag + "_" + current_test_name() + "_XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary folder " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string data_path(const std::string& relative) {
  return std::string(SAMDEBLUR_TEST_DATA) + "/" + relative;
}

std::string source_path(const std::string& relative) {
  return std::string(SAMDEBLUR_SOURCE_DIR) + "/" + relative;
}

std::string fixture_path(const std::string& relative, const std::string& hint) {
  const std::string path = data_path(relative);
  if (!fs::exists(path)) throw std::runtime_error("missing fixture " + path + "; " + hint);
  return path;
}

std::map<std::string, torch::Tensor> load_npz_fixture(const std::string& relative,
                                                      const std::string& hint) {
  return io::read_npz(fixture_path(relative, hint));
}

void check_fixture_version(const std::string& relative, int expected, const std::string& hint) {
  const std::string path = fixture_path(relative, hint);
  std::ifstream in(path);
  const auto meta = nlohmann::json::parse(in);
  if (meta.at("fixture_version").get<int>() != expected)
    throw std::runtime_error(path + " has fixture_version " + meta.at("fixture_version").dump() +
                             ", the tests expect " + std::to_string(expected) + "; " + hint);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string app_path(const std::string& name) {
  return std::string(SAMDEBLUR_BIN_DIR) + "/" + name;
}

bool app_built(const std::string& name) { return fs::exists(app_path(name)); }

AppResult run_app(const std::string& name, const std::vector<std::string>& args) {
  TempDir io("app");
  const std::string out_path = (io / "stdout").string();
  const std::string err_path = (io / "stderr").string();
  std::vector<std::string> argv = {app_path(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed running " + argv[0]);
  if (pid == 0) {
    // Child: only async-signal-safe calls until execv.
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) ::_exit(126);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::execv(c_argv[0], c_argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed running " + argv[0]);
  }
  AppResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

bool python_has(const std::string& module) {
  static std::mutex mutex;
  static std::map<std::string, bool> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(module);
  if (it != cache.end()) return it->second;
  const std::string cmd = "/usr/bin/python3 -c 'import " + module + "' >/dev/null 2>&1";
  const bool ok = fs::exists("/usr/bin/python3") && std::system(cmd.c_str()) == 0;
  cache[module] = ok;
  return ok;
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double tol,
                  const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const auto a = actual.detach().to(torch::kCPU, torch::kDouble);
  const auto e = expected.detach().to(torch::kCPU, torch::kDouble);
  const auto diff = (a - e).abs();
  if (diff.numel() == 0) return;
  const int64_t worst = diff.flatten().argmax().item<int64_t>();
  const double worst_diff = diff.flatten()[worst].item<double>();
  EXPECT_LE(worst_diff, tol) << what << ": worst |diff| " << worst_diff << " at flat index "
                             << worst << " (actual " << a.flatten()[worst].item<double>()
                             << ", expected " << e.flatten()[worst].item<double>() << ")";
}

}  // namespace samdeblur::test
