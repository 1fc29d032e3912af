#include <gtest/gtest.h>

#include "samdeblur/core/device.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/models/network.h"

using namespace samdeblur;

namespace {

models::DeblurNet tiny(const std::string& type) {
  models::NetworkOptions o;
  o.type = type;
  o.width = 4;
  o.enc_blk_nums = {1};
  o.middle_blk_num = 1;
  o.dec_blk_nums = {1};
  o.seg_channel = 2;
  torch::manual_seed(3);
  auto net = models::build_network(o);
  net->eval();
  return net;
}

dataset::Sample sample(int64_t h, int64_t w, bool with_masks) {
  dataset::Sample s;
  s.name = "x";
  torch::manual_seed(5);
  s.lq = torch::rand({3, h, w});
  s.gt = torch::rand({3, h, w});
  if (with_masks) {
    const auto rows = torch::div(torch::arange(h) * 3, h, "floor").unsqueeze(1);  // 0..2
    const auto cols = torch::div(torch::arange(w) * 2, w, "floor").unsqueeze(0);  // 0..1
    const auto labels = (rows * 2 + cols).to(torch::kLong);                       // 6 blocks
    s.masks = models::SegMasks::from_labels(labels, 6, 1.0 / 255.0);
  }
  return s;
}

}  // namespace

TEST(Infer, GridsWithOneCropEqualsWholeImage) {
  for (const std::string type : {"NAFNet", "SegNAFNet"}) {
    SCOPED_TRACE(type);
    auto net = tiny(type);
    const auto s = sample(21, 30, type == "SegNAFNet");
    eval::ValOptions whole;
    eval::ValOptions grids;
    grids.grids = true;
    grids.crop_size_h = 21;
    grids.crop_size_w = 30;
    const auto a = eval::infer(*net, s, whole, torch::kCPU);
    const auto b = eval::infer(*net, s, grids, torch::kCPU);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{3, 21, 30}));
    EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-6));
  }
}

TEST(Infer, GridsCoverEveryPixelAndAverageOverlaps) {
  auto net = tiny("NAFNet");
  const auto s = sample(23, 37, false);
  eval::ValOptions grids;
  grids.grids = true;
  grids.crop_size_h = 10;
  grids.crop_size_w = 16;
  grids.max_minibatch = 3;
  const auto out = eval::infer(*net, s, grids, torch::kCPU);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 23, 37}));
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  // The bottom-right crop (aligned to the border) is processed alone: equal to
  // the network run on that crop where no other crop overlaps it.
  dataset::Sample corner = s;
  corner.lq = s.lq.slice(1, 13, 23).slice(2, 21, 37);
  eval::ValOptions whole;
  const auto ref = eval::infer(*net, corner, whole, torch::kCPU);
  EXPECT_TRUE(torch::allclose(out.slice(1, 20, 23).slice(2, 32, 37),
                              ref.slice(1, 7, 10).slice(2, 11, 16), 1e-5, 1e-5));
  // Same numbers whatever the minibatch size.
  grids.max_minibatch = 1;
  EXPECT_TRUE(torch::allclose(out, eval::infer(*net, s, grids, torch::kCPU), 1e-6, 1e-6));
}

// --threads must bound the BLAS pool too: Debian's OpenBLAS (pthread build) would
// otherwise run fp32 matrix products on every core whatever the intra-op threads are.
TEST(Infer, CpuThreadsBoundTheBlasPool) {
  const int torch_before = torch::get_num_threads();
  const int blas_before = blas_threads();
  EXPECT_EQ(set_cpu_threads(0), "");
  EXPECT_EQ(torch::get_num_threads(), torch_before);
  const std::string blas = set_cpu_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  if (blas.empty()) {
    EXPECT_EQ(blas_threads(), -1) << "a BLAS pool is loaded but set_cpu_threads missed it";
  } else {
    EXPECT_EQ(blas_threads(), 1) << blas;
  }
  set_cpu_threads(torch_before);  // both pools at the suite's thread count again
  if (!blas.empty()) {
    EXPECT_GT(blas_before, 0);
  }
}

TEST(Infer, DeviceParsing) {
  EXPECT_EQ(parse_device("cpu").type(), torch::kCPU);
  EXPECT_THROW(parse_device("tpu:0"), Error);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(parse_device("cuda:0"), Error);
  }
}
