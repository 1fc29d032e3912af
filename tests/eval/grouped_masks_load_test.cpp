// The grouped-mask path of sdb-eval's loader in bounded memory (issue 12): .npz bool stacks
// inflated straight into a tensor, SegMasks::from_masks building the label map in one pass
// over the stack. Both must give exactly what the dense formulations give; and sdb-eval
// writes timing.json (per-image load / network / rest), which scripts/bench_eval.sh reads.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "samdeblur/io/npy.h"
#include "samdeblur/models/network.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace sm = samdeblur::models;

namespace {

// The former dense formulation: labels = sum_k (k + 1) * mask_k - 1 over the non-empty
// masks when no pixel is in two masks; otherwise the non-empty masks as float.
sm::SegMasks reference_from_masks(const torch::Tensor& masks, double value) {
  auto binary = (masks.dim() == 4 ? masks.squeeze(1) : masks) != 0;
  const auto nonempty = binary.reshape({binary.size(0), -1}).any(1);
  binary = binary.index({nonempty});
  const int64_t m = binary.size(0), h = binary.size(1), w = binary.size(2);
  sm::SegMasks out;
  out.value = value;
  out.num_masks = m;
  if (m == 0) {
    out.labels = torch::full({h, w}, -1, torch::kLong);
  } else if (binary.sum(0).max().item<int64_t>() <= 1) {
    const auto ids = torch::arange(1, m + 1, torch::kLong).view({m, 1, 1});
    out.labels = (binary.to(torch::kLong) * ids).sum(0) - 1;
  } else {
    out.dense = binary.to(torch::kFloat).unsqueeze(1);
  }
  return out;
}

// (M, 1, H, W) bool one-hot stack of a random label map with values in [-1, m): -1 pixels
// are in no mask, and some labels are absent (empty masks).
torch::Tensor random_stack(int64_t m, int64_t h, int64_t w, uint64_t seed) {
  torch::manual_seed(seed);
  const auto labels = torch::randint(-1, m, {h, w}, torch::kLong);
  return (labels.unsqueeze(0) == torch::arange(m + 3, torch::kLong).view({-1, 1, 1})).unsqueeze(1);
}

void expect_same(const sm::SegMasks& got, const sm::SegMasks& want) {
  EXPECT_EQ(got.num_masks, want.num_masks);
  EXPECT_EQ(got.value, want.value);
  ASSERT_EQ(got.labels.defined(), want.labels.defined());
  ASSERT_EQ(got.dense.defined(), want.dense.defined());
  if (want.labels.defined()) {
    EXPECT_EQ(got.labels.scalar_type(), torch::kLong);
    EXPECT_TRUE(torch::equal(got.labels, want.labels));
  }
  if (want.dense.defined()) {
    EXPECT_EQ(got.dense.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(got.dense, want.dense));
  }
}

}  // namespace

TEST(GroupedMasksLoad, FromMasksEqualsDenseFormulation) {
  // Odd sizes exercise the 8-byte words' tails and the pixel blocks' edges.
  for (const auto& [m, h, w] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {5, 7, 9}, {40, 33, 301}, {170, 64, 131}}) {
    const auto stack = random_stack(m, h, w, static_cast<uint64_t>(m * 1000 + h));
    const auto want = reference_from_masks(stack, 1.0 / 255.0);
    SCOPED_TRACE(testing::Message() << m << " masks, " << h << "x" << w);
    expect_same(sm::SegMasks::from_masks(stack, 1.0 / 255.0), want);  // bool
    expect_same(sm::SegMasks::from_masks(stack.to(torch::kByte) * 7, 1.0 / 255.0), want);
    expect_same(sm::SegMasks::from_masks(stack.to(torch::kFloat) / 255, 1.0 / 255.0), want);
    expect_same(sm::SegMasks::from_masks(stack.squeeze(1), 1.0 / 255.0), want);  // (M, H, W)
  }
}

TEST(GroupedMasksLoad, FromMasksNonContiguousOverlapAndEmpty) {
  const auto stack = random_stack(12, 40, 50, 3);
  // A crop (non-contiguous view), as the training augmentation passes.
  const auto crop = stack.slice(2, 5, 30).slice(3, 7, 41);
  expect_same(sm::SegMasks::from_masks(crop, 1.0), reference_from_masks(crop, 1.0));
  // Overlapping masks: dense, the empty ones dropped.
  auto overlapping = stack.clone();
  overlapping[0][0].slice(0, 0, 20).fill_(true);
  const auto want = reference_from_masks(overlapping, 1.0);
  ASSERT_TRUE(want.dense.defined());
  expect_same(sm::SegMasks::from_masks(overlapping, 1.0), want);
  // Overlap found in the last pixel block only.
  auto late = torch::zeros({2, 1, 200, 200}, torch::kBool);
  late[0][0].fill_(true);
  late[1][0][199][199] = true;
  expect_same(sm::SegMasks::from_masks(late, 1.0), reference_from_masks(late, 1.0));
  // No mask at all.
  const auto none = torch::zeros({3, 1, 4, 5}, torch::kBool);
  expect_same(sm::SegMasks::from_masks(none, 1.0), reference_from_masks(none, 1.0));
}

TEST(GroupedMasksLoad, NpzBoolStackReadsAsNumpy) {
  const samdeblur::test::TempDir tmp("grouped_masks_load");
  const auto stack = random_stack(9, 17, 23, 5);
  const std::string path = (tmp.path() / "m.npz").string();
  for (const bool compressed : {true, false}) {
    samdeblur::io::write_npz(path, {{"masks", stack}}, compressed);
    const auto back =
        samdeblur::io::read_npz_array(path, "masks", samdeblur::io::NpyExpect{{17, 23}});
    EXPECT_EQ(back.scalar_type(), torch::kBool);
    EXPECT_EQ(back.sizes(), stack.sizes());
    EXPECT_TRUE(back.is_contiguous());
    EXPECT_TRUE(torch::equal(back, stack));
    expect_same(sm::SegMasks::from_masks(back, 1.0), reference_from_masks(stack, 1.0));
  }
  // uint8 stacks keep their bytes (from_masks counts any nonzero byte as in the mask).
  const auto bytes = torch::tensor({0, 2, 255, 1, 0, 9}, torch::kByte).view({1, 1, 2, 3});
  samdeblur::io::write_npz(path, {{"masks", bytes}}, true);
  const auto raw = samdeblur::io::read_npz_array(path, "masks");
  EXPECT_EQ(raw.scalar_type(), torch::kByte);
  EXPECT_TRUE(torch::equal(raw, bytes));
  expect_same(sm::SegMasks::from_masks(raw, 1.0), reference_from_masks(bytes, 1.0));
}
