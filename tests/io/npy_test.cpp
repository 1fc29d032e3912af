// Tests of samdeblur::io npy/npz. Fixtures: scripts/make_io_fixtures.py (formulas in
// tests/data/io/README.md); regenerate with `/usr/bin/python3 scripts/make_io_fixtures.py`.
#include "samdeblur/io/npy.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

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

torch::Tensor f4_base() {
  return torch::arange(24, torch::kFloat32).reshape({2, 3, 4}) * 0.5 - 3.0;
}

torch::Tensor mask_base() {
  auto m = torch::arange(3).view({3, 1, 1});
  auto h = torch::arange(4).view({1, 4, 1});
  auto w = torch::arange(5).view({1, 1, 5});
  return ((m + h * w) % 3 == 0).unsqueeze(1);
}

void expect_equal(const torch::Tensor& actual, const torch::Tensor& expected) {
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(actual.is_contiguous());
  EXPECT_TRUE(torch::equal(actual, expected)) << "actual:\n"
                                              << actual << "\nexpected:\n"
                                              << expected;
}

bool have_numpy() { return test::python_has("numpy"); }

}  // namespace

TEST(Npy, ReadsEveryDtype) {
  expect_equal(io::read_npy(data("f4_c.npy")), f4_base());
  expect_equal(io::read_npy(data("f8.npy")),
               torch::arange(6, torch::kFloat64).reshape({2, 3}) / 7.0);
  expect_equal(io::read_npy(data("f2.npy")),
               (torch::arange(5, torch::kFloat32) * 0.25).to(torch::kHalf));
  expect_equal(io::read_npy(data("i4.npy")), torch::arange(-3, 3, torch::kInt32));
  expect_equal(io::read_npy(data("i8.npy")),
               torch::arange(6, torch::kInt64).reshape({3, 2}) * int64_t{10000000000});
  expect_equal(io::read_npy(data("u1.npy")),
               torch::arange(250, 256, torch::kInt32).to(torch::kUInt8));
  expect_equal(io::read_npy(data("mask_b1.npy")), mask_base());
}

TEST(Npy, FortranOrderIsReturnedCContiguous) {
  expect_equal(io::read_npy(data("f4_fortran.npy")), f4_base());
  expect_equal(io::read_npy(data("mask_b1_fortran.npy")), mask_base());
}

TEST(Npy, ZeroDimAndHeaderVersions) {
  const auto s = io::read_npy(data("scalar_f4.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 3.5f);
  expect_equal(io::read_npy(data("f4_v2.npy")), f4_base());
  expect_equal(io::read_npy(data("f4_v3.npy")), f4_base());
}

TEST(Npy, UnsupportedDtypesNamePathAndDtype) {
  const std::string be = error_of([] { io::read_npy(data("f4_bigendian.npy")); });
  EXPECT_NE(be.find("f4_bigendian.npy"), std::string::npos) << be;
  EXPECT_NE(be.find(">f4"), std::string::npos) << be;
  const std::string obj = error_of([] { io::read_npy(data("object.npy")); });
  EXPECT_NE(obj.find("object.npy"), std::string::npos) << obj;
  EXPECT_NE(obj.find("|O"), std::string::npos) << obj;
}

TEST(Npy, TruncatedFilesThrowFileError) {
  for (const char* name : {"f4_truncated.npy", "f4_truncated_header.npy", "masks_truncated.npz"}) {
    const std::string p = data(name);
    try {
      if (std::string(name).find(".npz") != std::string::npos)
        io::read_npz(p);
      else
        io::read_npy(p);
      ADD_FAILURE() << "no error for " << name;
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(io::read_npy("/nonexistent/x.npy"), FileError);
}

TEST(Npy, HeaderSizesAreCheckedAgainstData) {
  auto bytes = read_file_bytes(data("f4_c.npy"));
  // Header length pointing past the end of the file.
  auto big_header = bytes;
  big_header[8] = 0xff;
  big_header[9] = 0xff;
  EXPECT_THROW(io::parse_npy(big_header.data(), big_header.size(), "mem"), FileError);
  // A shape whose element count overflows 64 bits.
  std::string text(bytes.begin(), bytes.end());
  const auto pos = text.find("(2, 3, 4)");
  ASSERT_NE(pos, std::string::npos);
  std::string huge = text;
  huge.replace(pos, 9, "(4294967296, 4294967296, 99)");
  // Keep the declared header length consistent with the longer literal.
  const size_t hl = huge.find('\n') + 1 - 10;
  huge[8] = static_cast<char>(hl & 0xff);
  huge[9] = static_cast<char>(hl >> 8);
  const std::string msg = error_of([&] {
    io::parse_npy(reinterpret_cast<const uint8_t*>(huge.data()), huge.size(), "mem.npy");
  });
  EXPECT_NE(msg.find("mem.npy"), std::string::npos) << msg;
}

TEST(Npy, RandomCorruptionNeverCrashes) {
  const auto good = read_file_bytes(data("f4_c.npy"));
  test::for_each_mutation(good, 1234, 500, 8, 5, [](const std::vector<uint8_t>& bytes) {
    try {
      io::parse_npy(bytes.data(), bytes.size(), "fuzz.npy");
    } catch (const Error&) {
    }
  });
}

TEST(Npz, ReadsStoredAndDeflated) {
  for (const char* name : {"masks_stored.npz", "masks_deflated.npz"}) {
    const auto arrays = io::read_npz(data(name));
    ASSERT_EQ(arrays.size(), 2u) << name;
    expect_equal(arrays.at("masks"), mask_base());
    expect_equal(arrays.at("scores"), torch::tensor({0.5f, 0.25f, 0.125f}));
    expect_equal(io::read_npz_array(data(name), "masks"), mask_base());
  }
}

TEST(Npz, MissingKeyListsKeysPresent) {
  const std::string msg = error_of([] { io::read_npz_array(data("masks_stored.npz"), "nope"); });
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
  EXPECT_NE(msg.find("masks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scores"), std::string::npos) << msg;
}

TEST(Npz, RandomCorruptionNeverCrashes) {
  const auto good = read_file_bytes(data("masks_deflated.npz"));
  const TempDir tmp("npy_fuzz");
  const fs::path& dir = tmp.path();
  const std::string p = (dir / "fuzz.npz").string();
  test::for_each_mutation(good, 99, 300, 8, 7, [&](const std::vector<uint8_t>& bytes) {
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);  // no fsync: speed
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    try {
      io::read_npz(p);
    } catch (const Error&) {
    }
  });
}

TEST(NpyWrite, RoundTripAllDtypes) {
  const TempDir tmp("npy_roundtrip");
  const fs::path& dir = tmp.path();
  const std::vector<torch::Tensor> tensors = {
      f4_base(),
      f4_base().transpose(0, 2),  // non-contiguous input is written in logical C order
      torch::arange(6, torch::kFloat64) / 3.0,
      f4_base().to(torch::kHalf),
      torch::arange(-4, 4, torch::kInt32),
      torch::arange(5, torch::kInt64) * int64_t{123456789012},
      torch::arange(7, torch::kInt32).to(torch::kUInt8),
      torch::arange(7, torch::kInt32).to(torch::kInt8) - 3,
      torch::arange(7, torch::kInt32).to(torch::kInt16) * 1000,
      mask_base(),
      torch::tensor(2.25),
      torch::zeros({0, 3}),
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string p = (dir / ("t" + std::to_string(i) + ".npy")).string();
    io::write_npy(p, tensors[i]);
    expect_equal(io::read_npy(p), tensors[i].contiguous());
  }
  EXPECT_THROW(io::write_npy((dir / "bf16.npy").string(), f4_base().to(torch::kBFloat16)), Error);
}

TEST(NpzWrite, RoundTripStoredAndCompressed) {
  const TempDir tmp("npy_npz");
  const fs::path& dir = tmp.path();
  for (bool compressed : {false, true}) {
    const std::string p = (dir / (compressed ? "c.npz" : "s.npz")).string();
    io::write_npz(p, {{"masks", mask_base()}, {"image", f4_base()}}, compressed);
    const auto arrays = io::read_npz(p);
    ASSERT_EQ(arrays.size(), 2u);
    expect_equal(arrays.at("masks"), mask_base());
    expect_equal(arrays.at("image"), f4_base());
  }
}

TEST(NpyWrite, NumpyReadsWhatWeWrite) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  const TempDir tmp("npy_numpy");
  const fs::path& dir = tmp.path();
  io::write_npy((dir / "a.npy").string(), f4_base());
  io::write_npz((dir / "b.npz").string(),
                {{"masks", mask_base()}, {"x", f4_base().to(torch::kHalf)}}, true);
  io::write_npz((dir / "c.npz").string(), {{"i", torch::arange(5, torch::kInt64)}}, false);
  const std::string script =
      "import numpy as np, sys; d=sys.argv[1]\n"
      "e=(np.arange(24,dtype=np.float32).reshape(2,3,4)*0.5-3).astype(np.float32)\n"
      "a=np.load(d+'/a.npy'); assert a.dtype==np.float32 and (a==e).all()\n"
      "b=np.load(d+'/b.npz'); assert b['masks'].dtype==bool and b['masks'].shape==(3,1,4,5)\n"
      "assert b['x'].dtype==np.float16 and (b['x']==e.astype(np.float16)).all()\n"
      "c=np.load(d+'/c.npz'); assert (c['i']==np.arange(5)).all()\n";
  const auto py = test::run_python({"-c", script, dir.string()});
  EXPECT_EQ(py.exit_code, 0) << py.output();
}
