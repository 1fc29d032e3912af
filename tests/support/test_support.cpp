#include "test_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

#include "samdeblur/io/npy.h"

extern char** environ;

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

dataset::DatasetOptions tiny_dataset_options(const std::string& type, const std::string& root) {
  const std::string dir = root.empty() ? data_path("eval") : root;
  dataset::DatasetOptions o;
  o.key = "test";
  o.name = "tiny";
  o.type = type;
  o.dataroot_gt = dir + "/target";
  o.dataroot_lq = dir + "/input";
  if (type == "PairedImageGroupMaskDataset") o.dataroot_mask = dir + "/grouped_masks";
  if (type == "PairedImageMaskDataset") o.dataroot_mask = dir + "/input_mask";
  return o;
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

nlohmann::json load_json_fixture(const std::string& relative, const std::string& hint) {
  std::ifstream in(fixture_path(relative, hint));
  return nlohmann::json::parse(in);
}

nlohmann::json check_fixture_version(const std::string& relative, int expected,
                                     const std::string& hint) {
  const std::string path = data_path(relative);
  const auto meta = load_json_fixture(relative, hint);
  if (meta.at("fixture_version").get<int>() != expected)
    throw std::runtime_error(path + " has fixture_version " + meta.at("fixture_version").dump() +
                             ", the tests expect " + std::to_string(expected) + "; " + hint);
  return meta;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return path.string();
}

cv::Mat ramp_image(int h, int w) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        m.at<cv::Vec3b>(y, x)[c] = static_cast<uint8_t>((x * 3 + y * 5 + c * 70) % 256);
  return m;
}

sam::SamConfig tiny_sam_config() {
  const std::string meta_path = data_path("sam/model/meta.json");
  std::ifstream in(meta_path);
  if (!in) throw std::runtime_error("missing fixture " + meta_path);
  const auto t = nlohmann::json::parse(in)["tiny"];
  sam::SamConfig c;
  c.model_type = "tiny";
  c.encoder_embed_dim = t["embed_dim"];
  c.encoder_depth = t["depth"];
  c.encoder_num_heads = t["num_heads"];
  c.encoder_global_attn_indexes = t["global_attn_indexes"].get<std::vector<int64_t>>();
  c.image_size = t["image_size"];
  c.patch_size = t["patch_size"];
  c.window_size = t["window_size"];
  c.prompt_embed_dim = t["prompt_embed_dim"];
  c.mlp_dim_decoder = t["decoder_mlp_dim"];
  c.decoder_depth = t["decoder_depth"];
  c.decoder_num_heads = t["decoder_num_heads"];
  c.num_multimask_outputs = t["num_multimask_outputs"];
  c.iou_head_depth = t["iou_head_depth"];
  c.iou_head_hidden_dim = t["iou_head_hidden_dim"];
  c.mask_in_chans = t["mask_in_chans"];
  return c;
}

std::string tiny_sam_checkpoint() { return data_path("sam/model/tiny_sam.pth"); }

std::vector<std::string> tiny_train_overrides(const fs::path& experiments_root, bool masks) {
  const std::string data = data_path("eval");
  std::vector<std::string> o = {"datasets.train.dataroot_gt=" + data + "/target",
                                "datasets.train.dataroot_lq=" + data + "/input",
                                "datasets.val.dataroot_gt=" + data + "/target",
                                "datasets.val.dataroot_lq=" + data + "/input",
                                "path.experiments_root=" + experiments_root.string(),
                                "datasets.train.num_worker_per_gpu=1"};
  if (masks) {
    o.push_back("datasets.train.dataroot_mask=" + data + "/grouped_masks");
    o.push_back("datasets.val.dataroot_mask=" + data + "/grouped_masks");
  }
  return o;
}

std::string app_path(const std::string& name) {
  return std::string(SAMDEBLUR_BIN_DIR) + "/" + name;
}

bool app_built(const std::string& name) { return fs::exists(app_path(name)); }

namespace {

// Starts `program` with `args` and the environment of this process plus `env`; its
// stdout and stderr go to the given files, or stay this process's when empty.
pid_t spawn(const std::string& program, const std::vector<std::string>& args, const Env& env,
            const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  // The child's environment, built before fork (the child may only exec).
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_text.push_back(entry);
  }
  for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
  std::vector<char*> c_env;
  for (auto& e : env_text) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed running " + program);
  if (pid == 0) {
    // Child: only async-signal-safe calls until execve.
    if (!out_path.empty()) {
      const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0) ::_exit(126);
      ::dup2(out, STDOUT_FILENO);
    }
    if (!err_path.empty()) {
      const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err < 0) ::_exit(126);
      ::dup2(err, STDERR_FILENO);
    }
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

AppResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const Env& env) {
  TempDir io("app");
  const std::string out_path = (io / "stdout").string();
  const std::string err_path = (io / "stderr").string();
  AppResult r;
  r.exit_code = wait_for_exit(spawn(program, args, env, out_path, err_path), &r.killed);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

pid_t start_app(const std::string& name, const std::vector<std::string>& args, const Env& env) {
  return spawn(app_path(name), args, env, "", "");
}

int wait_for_exit(pid_t pid, bool* killed) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed for PID " + std::to_string(pid));
  }
  if (killed != nullptr) *killed = !WIFEXITED(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

AppResult run_app(const std::string& name, const std::vector<std::string>& args, const Env& env) {
  return run_program(app_path(name), args, env);
}

AppResult run_python(const std::vector<std::string>& args) {
  return run_program("/usr/bin/python3", args);
}

std::vector<std::string> set_flags(const std::vector<std::string>& overrides) {
  std::vector<std::string> flags;
  for (const auto& o : overrides) {
    flags.push_back("--set");
    flags.push_back(o);
  }
  return flags;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

long dead_pid() {
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) ::_exit(0);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return static_cast<long>(child);
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

void for_each_mutation(const std::vector<uint8_t>& good, uint32_t seed, int iterations,
                       int max_flips, int truncate_every,
                       const std::function<void(const std::vector<uint8_t>&)>& f,
                       std::size_t span) {
  std::mt19937 rng(seed);
  for (int it = 0; it < iterations; ++it) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(rng() % static_cast<uint32_t>(max_flips));
    const std::size_t range = span == 0 ? bytes.size() : std::min(bytes.size(), span);
    for (int k = 0; k < flips; ++k) bytes[rng() % range] = static_cast<uint8_t>(rng());
    if (it % truncate_every == 0) bytes.resize(rng() % bytes.size());
    f(bytes);
  }
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
