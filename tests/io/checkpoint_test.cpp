// Tests of samdeblur::io checkpoint reading/writing and state-dict loading. Fixtures:
// scripts/make_io_fixtures.py (formulas in tests/data/io/README.md); regenerate with
// `/usr/bin/python3 scripts/make_io_fixtures.py`.
#include "samdeblur/io/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <random>

// White-box: the unpickler and zip reader are private to src/io.
#include "../../src/io/pickle.h"
#include "../../src/io/zip_util.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using test::error_of;
using test::TempDir;

namespace {

std::string data(const std::string& name) {
  return test::fixture_path("io/" + name,
                            "regenerate with /usr/bin/python3 scripts/make_io_fixtures.py");
}

void expect_equal(const torch::Tensor& actual, const torch::Tensor& expected,
                  const std::string& what = "") {
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(torch::equal(actual, expected)) << what << "\nactual:\n"
                                              << actual << "\nexpected:\n"
                                              << expected;
}

const std::vector<std::string> kTinyKeys = {"conv.weight",
                                            "conv.bias",
                                            "bn.weight",
                                            "bn.bias",
                                            "bn.running_mean",
                                            "bn.running_var",
                                            "bn.num_batches_tracked"};

// Expected value of tiny_state_dict()[kTinyKeys[i]] in scripts/make_io_fixtures.py.
torch::Tensor tiny_value(size_t i) {
  if (kTinyKeys[i] == "bn.num_batches_tracked") return torch::tensor(int64_t{7});
  const std::vector<int64_t> shape =
      i == 0 ? std::vector<int64_t>{2, 3, 1, 1} : std::vector<int64_t>{2};
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return (torch::arange(n, torch::kFloat32) * 0.1f + static_cast<float>(i)).reshape(shape);
}

void expect_tiny(const io::StateDict& sd, float scale = 1.f) {
  ASSERT_EQ(sd.size(), kTinyKeys.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    EXPECT_EQ(sd[i].first, kTinyKeys[i]);
    torch::Tensor e = tiny_value(i);
    if (e.is_floating_point()) e = e * scale;
    expect_equal(sd[i].second, e, sd[i].first);
  }
}

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 2, 1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(2));
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Tiny);

torch::Tensor base() { return torch::arange(24, torch::kFloat32).reshape({4, 6}) * 0.5 - 3.0; }

bool have_python_torch() { return test::python_has("torch"); }

}  // namespace

TEST(Pth, ReadsBasicSrParamsAndEma) {
  expect_tiny(io::load_state_dict_file(data("basicsr.pth")));
  expect_tiny(io::load_state_dict_file(data("basicsr.pth"), "params_ema"), 2.f);
  expect_tiny(io::load_state_dict_file(data("bare.pth")));
  expect_tiny(io::load_state_dict_file(data("bare.pth"), "params_ema"));  // bare dict: key ignored
}

TEST(Pth, MissingParamKeyListsTopLevelKeys) {
  const std::string msg =
      error_of([] { io::load_state_dict_file(data("ema_only.pth"), "params"); });
  EXPECT_NE(msg.find("ema_only.pth"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'params_ema'"), std::string::npos) << msg;
  // BasicSR's fallback: params_ema requested, only params present -> params.
  EXPECT_EQ(io::load_state_dict_file(data("module_prefix.pth"), "params_ema").size(),
            kTinyKeys.size());
}

TEST(Pth, NestedDictIsAnErrorNamingKeys) {
  const std::string msg = error_of([] { io::load_state_dict_file(data("nested.pth")); });
  EXPECT_NE(msg.find("'model'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'epoch'"), std::string::npos) << msg;
}

TEST(Pth, ReadsEveryDtype) {
  const auto sd = io::load_state_dict_file(data("dtypes.pth"));
  std::map<std::string, torch::Tensor> m(sd.begin(), sd.end());
  ASSERT_EQ(sd.size(), 11u);
  EXPECT_EQ(sd.front().first, "f16");
  expect_equal(m.at("f16"), base().to(torch::kHalf));
  expect_equal(m.at("bf16"), base().to(torch::kBFloat16));
  expect_equal(m.at("f64"), base().to(torch::kDouble) / 7.0);
  expect_equal(m.at("i64"), torch::arange(6, torch::kInt64) * int64_t{10000000000});
  expect_equal(m.at("i32"), torch::arange(-3, 3, torch::kInt32));
  expect_equal(m.at("i16"), torch::arange(-3, 3, torch::kInt16) * 1000);
  expect_equal(m.at("i8"), torch::arange(-3, 3, torch::kInt8));
  expect_equal(m.at("u8"), torch::arange(250, 256, torch::kInt32).to(torch::kUInt8));
  expect_equal(m.at("bool"), torch::arange(6) % 3 == 0);
  expect_equal(m.at("scalar"), torch::tensor(3.5f));
  expect_equal(m.at("empty"), torch::zeros({0, 3}));
}

TEST(Pth, ViewsSharingAStorage) {
  const auto sd = io::load_state_dict_file(data("views.pth"));
  std::map<std::string, torch::Tensor> m(sd.begin(), sd.end());
  using torch::indexing::None;
  using torch::indexing::Slice;
  expect_equal(m.at("a"), base());
  expect_equal(m.at("b"), base().index({Slice(1, None), Slice(None, None, 2)}));
  expect_equal(m.at("c"), base().t());
  expect_equal(m.at("d"), base()[2]);
  for (const auto& [k, t] : sd) EXPECT_TRUE(t.is_contiguous()) << k;
  // Results never alias, although the file stores them in one storage.
  m.at("a").add_(100);
  expect_equal(m.at("b"), base().index({Slice(1, None), Slice(None, None, 2)}));
  expect_equal(m.at("d"), base()[2]);
  expect_equal(io::load_state_dict_file(data("parameter.pth"))[0].second, base());
}

TEST(Pth, HostileGlobalsAreRefusedByName) {
  const std::string sys = error_of([] { io::load_state_dict_file(data("hostile_system.pth")); });
  EXPECT_NE(sys.find("refusing to load global 'posix.system'"), std::string::npos) << sys;
  EXPECT_NE(sys.find("hostile_system.pth"), std::string::npos) << sys;
  const std::string ev = error_of([] { io::load_state_dict_file(data("hostile_eval.pth")); });
  EXPECT_NE(ev.find("'builtins.eval'"), std::string::npos) << ev;
  const std::string op = error_of([] { io::load_state_dict_file(data("bad_opcode.pth")); });
  EXPECT_NE(op.find("opcode 0xff"), std::string::npos) << op;
  EXPECT_NE(op.find("offset 5"), std::string::npos) << op;
  const std::string memo = error_of([] { io::load_state_dict_file(data("bad_memo.pth")); });
  EXPECT_NE(memo.find("memo index 5"), std::string::npos) << memo;
}

TEST(Pth, TruncatedAndForeignFilesThrow) {
  EXPECT_THROW(io::load_state_dict_file(data("truncated.pth")), FileError);
  EXPECT_THROW(io::load_state_dict_file(data("f4_c.npy")), FileError);
  EXPECT_THROW(io::load_state_dict_file("/nonexistent/x.pth"), FileError);
  const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a};
  EXPECT_THROW(io::load_state_dict_bytes(legacy, sizeof(legacy), "legacy.pth"), FileError);
}

TEST(Pth, RandomFileCorruptionNeverCrashes) {
  const auto good = read_file_bytes(data("views.pth"));
  test::for_each_mutation(good, 7, 300, 6, 6, [](const std::vector<uint8_t>& bytes) {
    try {
      io::load_state_dict_bytes(bytes.data(), bytes.size(), "fuzz.pth");
    } catch (const Error&) {
    }
  });
}

TEST(Pickle, RandomPickleCorruptionNeverCrashes) {
  // Fuzz data.pkl itself (zip CRCs would reject most whole-file mutations early).
  io::detail::ZipReader zip(read_file_bytes(data("basicsr.pth")), "basicsr.pth");
  const auto pkl = zip.read(zip.find("basicsr/data.pkl"));
  std::map<std::string, std::vector<uint8_t>> records;
  for (size_t i = 0; i < zip.names().size(); ++i)
    records[zip.names()[i]] = zip.read(static_cast<int64_t>(i));
  io::detail::PersistentLoad load = [&](io::detail::PyObject* pid,
                                        const std::function<io::detail::PyObject*()>& make) {
    if (pid->kind != io::detail::PyObject::Kind::Tuple || pid->items.size() < 5)
      throw Error("bad pid");
    auto* s = make();
    s->dtype = torch::kFloat;
    s->tensor = torch::zeros({64}, torch::kUInt8);
    return s;
  };
  int parsed = 0;
  test::for_each_mutation(pkl, 11, 1000, 4, 8, [&](const std::vector<uint8_t>& bytes) {
    try {
      io::detail::unpickle(bytes.data(), bytes.size(), "fuzz.pkl", load);
      ++parsed;
    } catch (const Error&) {
    }
  });
  EXPECT_GT(parsed, 0);  // some mutations only touch values
}

TEST(Pickle, LimitsStopHostileGrowth) {
  // 100k nested TUPLE1 after one None: deep nesting must not overflow anything.
  std::vector<uint8_t> deep = {0x80, 0x02, 'N'};
  deep.insert(deep.end(), 100000, 0x85);
  deep.push_back('.');
  EXPECT_NO_THROW(io::detail::unpickle(deep.data(), deep.size(), "deep.pkl", nullptr));
  // Object-count limit.
  std::vector<uint8_t> many = {0x80, 0x02};
  many.insert(many.end(), 1000, ']');
  many.push_back('.');
  io::detail::UnpickleLimits limits;
  limits.max_objects = 100;
  const std::string msg = error_of(
      [&] { io::detail::unpickle(many.data(), many.size(), "many.pkl", nullptr, limits); });
  EXPECT_NE(msg.find("more than 100 objects"), std::string::npos) << msg;
  // A cycle (list appended to itself) is harmless with the arena.
  const std::vector<uint8_t> cycle = {0x80, 0x02, ']', 'q', 0, 'h', 0, 'a', '.'};
  EXPECT_NO_THROW(io::detail::unpickle(cycle.data(), cycle.size(), "cycle.pkl", nullptr));
}

TEST(Safetensors, ReadsAllDtypes) {
  const auto sd = io::load_state_dict_file(data("tensors.safetensors"));
  ASSERT_EQ(sd.size(), 5u);
  EXPECT_EQ(sd[0].first, "f32");
  expect_equal(sd[0].second, base());
  expect_equal(sd[1].second, base().to(torch::kHalf));
  expect_equal(sd[2].second, base().to(torch::kBFloat16));
  expect_equal(sd[3].second, torch::arange(6, torch::kInt64) * int64_t{10000000000});
  expect_equal(sd[4].second, torch::arange(6) % 3 == 0);
}

TEST(Safetensors, CorruptionNeverCrashes) {
  const auto good = read_file_bytes(data("tensors.safetensors"));
  // Mostly mutate the header (the first 400 bytes), where the offsets live.
  test::for_each_mutation(
      good, 5, 500, 6, 6,
      [](const std::vector<uint8_t>& bytes) {
        try {
          io::load_state_dict_bytes(bytes.data(), bytes.size(), "fuzz.safetensors");
        } catch (const Error&) {
        }
      },
      /*span=*/400);
}

TEST(LoadStateDict, StrictLoadsAndStripsModulePrefix) {
  for (const char* f : {"basicsr.pth", "module_prefix.pth"}) {
    Tiny net;
    const auto report = io::load_state_dict(*net, io::load_state_dict_file(data(f)), true, f);
    EXPECT_TRUE(report.ok());
    expect_equal(net->conv->weight.detach(), tiny_value(0), f);
    expect_equal(net->bn->running_var, tiny_value(5), f);
    expect_equal(net->bn->num_batches_tracked, tiny_value(6), f);
  }
}

TEST(LoadStateDict, ConvertsDtypeToTheParameters) {
  Tiny net;
  io::StateDict sd = io::load_state_dict_file(data("basicsr.pth"));
  for (auto& [k, t] : sd)
    if (t.is_floating_point()) t = t.to(torch::kHalf);
  io::load_state_dict(*net, sd, true, "fp16");
  EXPECT_EQ(net->conv->weight.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::allclose(net->conv->weight.detach(), tiny_value(0), 1e-3, 1e-3));
}

TEST(LoadStateDict, StrictErrorListsEveryProblem) {
  Tiny net;
  io::StateDict sd = io::load_state_dict_file(data("basicsr.pth"));
  sd.erase(sd.begin() + 1);                            // drop conv.bias
  sd.emplace_back("extra.weight", torch::zeros({3}));  // unexpected
  sd[1].second = torch::zeros({5});                    // bn.weight shape mismatch
  sd.erase(sd.begin() + 2);                            // drop bn.bias
  const torch::Tensor before = net->conv->weight.detach().clone();
  const std::string msg = error_of([&] { io::load_state_dict(*net, sd, true, "ckpt.pth"); });
  EXPECT_NE(msg.find("ckpt.pth"), std::string::npos) << msg;
  EXPECT_NE(msg.find("conv.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bn.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("extra.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bn.weight: checkpoint [5] vs model [2]"), std::string::npos) << msg;
  EXPECT_TRUE(torch::equal(net->conv->weight.detach(), before)) << "strict failure must not copy";

  const auto report = io::load_state_dict(*net, sd, false, "ckpt.pth");
  EXPECT_EQ(report.missing.size(), 2u);
  EXPECT_EQ(report.unexpected.size(), 1u);
  EXPECT_EQ(report.shape_mismatch.size(), 1u);
  expect_equal(net->conv->weight.detach(), tiny_value(0));  // the intersection is loaded
}

TEST(SaveStateDict, RoundTripPthAndSafetensors) {
  const TempDir tmp("ckpt_roundtrip");
  const fs::path& dir = tmp.path();
  const io::StateDict sd = {
      {"w", base()},
      {"view", base().t()},
      {"h", base().to(torch::kHalf)},
      {"bf", base().to(torch::kBFloat16)},
      {"i", torch::arange(5, torch::kInt64) * int64_t{3000000000}},
      {"neg", torch::arange(-70000, 70000, 10000, torch::kInt32)},
      {"b", torch::arange(6) % 2 == 0},
      {"s", torch::tensor(1.25)},
      {"e", torch::zeros({0, 2})},
  };
  const std::string pth = (dir / "net.pth").string();
  io::save_state_dict_file(pth, sd);
  const std::string st = (dir / "net.safetensors").string();
  io::save_safetensors(st, sd);
  for (const auto& p : {pth, st}) {
    const auto back = io::load_state_dict_file(p);
    ASSERT_EQ(back.size(), sd.size()) << p;
    for (size_t i = 0; i < sd.size(); ++i) {
      EXPECT_EQ(back[i].first, sd[i].first);
      expect_equal(back[i].second, sd[i].second.contiguous(), p + ":" + sd[i].first);
    }
  }
}

TEST(SaveStateDict, PythonTorchLoadReadsOurPth) {
  if (!have_python_torch()) GTEST_SKIP() << "/usr/bin/python3 with torch not available";
  const TempDir tmp("ckpt_python");
  const fs::path& dir = tmp.path();
  io::save_state_dict_file((dir / "net.pth").string(),
                           {{"w", base()},
                            {"h", base().t().to(torch::kHalf)},
                            {"b", torch::arange(4) < 2},
                            {"i", torch::arange(3, torch::kInt64) * int64_t{5000000000}}});
  const std::string script =
      "import torch, sys\n"
      "ck = torch.load(sys.argv[1] + '/net.pth')\n"
      "p = ck['params']; base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3.0\n"
      "assert list(p.keys()) == ['w', 'h', 'b', 'i'], list(p.keys())\n"
      "assert torch.equal(p['w'], base) and torch.equal(p['h'], base.t().half())\n"
      "assert torch.equal(p['b'], torch.arange(4) < 2)\n"
      "assert torch.equal(p['i'], torch.arange(3) * 5000000000)\n";
  const auto py = test::run_python({"-c", script, dir.string()});
  EXPECT_EQ(py.exit_code, 0) << py.output();
}
