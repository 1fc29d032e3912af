// The performance paths of SAM (issue 12): the mask generator drops masks that fail
// pred_iou_thresh before upsampling them (Predictor::predict_low_res / upscale_masks), and the
// mask decoder computes the first layer's image-side projections once per image
// (TwoWayImageCache); both are compared bit for bit with the plain path. The fast decoder
// execution (prompt groups, folded attentions, token-wise upscaling) is compared with the plain one
// within fp32 rounding.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "samdeblur/core/error.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/masks/options.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/sam/bench.h"
#include "samdeblur/sam/image_encoder.h"
#include "samdeblur/sam/mask_decoder.h"
#include "samdeblur/sam/mask_generator.h"
#include "samdeblur/sam/precision.h"
#include "samdeblur/sam/predictor.h"
#include "samdeblur/sam/sam_model.h"
#include "support/test_support.h"

using namespace samdeblur;
using namespace samdeblur::sam;

namespace {

std::unique_ptr<Predictor> tiny_predictor() {
  return make_predictor(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
}

// Seeded (B, 1, 2) prompts inside an (h, w) input frame.
torch::Tensor prompts(int64_t b, int64_t h, int64_t w) {
  torch::manual_seed(3);
  return torch::rand({b, 1, 2}, torch::kFloat64) *
         torch::tensor({static_cast<double>(w), static_cast<double>(h)}, torch::kFloat64);
}

// Forwards to a real predictor but upsamples every mask (the Predictor defaults), counting the
// planes: the generator's eager path, for comparison with its lazy one.
class EagerPredictor : public Predictor {
 public:
  explicit EagerPredictor(Predictor& inner) : inner_(inner) {}
  void set_image(const cv::Mat& image) override { inner_.set_image(image); }
  PointPrediction predict_torch(const torch::Tensor& c, const torch::Tensor& l,
                                bool multi) override {
    return inner_.predict_torch(c, l, multi);
  }
  torch::Tensor apply_coords(const torch::Tensor& c) const override {
    return inner_.apply_coords(c);
  }
  torch::Tensor image_embedding() const override { return inner_.image_embedding(); }
  cv::Size original_size() const override { return inner_.original_size(); }
  cv::Size input_size() const override { return inner_.input_size(); }
  const SamConfig& config() const override { return inner_.config(); }
  torch::Device device() const override { return inner_.device(); }
  double mask_threshold() const override { return inner_.mask_threshold(); }

 private:
  Predictor& inner_;
};

// Counts the planes the generator asks the real predictor to upsample.
class CountingPredictor : public EagerPredictor {
 public:
  explicit CountingPredictor(Predictor& inner) : EagerPredictor(inner), inner_(inner) {}
  PointPrediction predict_low_res(const torch::Tensor& c, const torch::Tensor& l,
                                  bool multi) override {
    auto p = inner_.predict_low_res(c, l, multi);
    predicted += p.low_res.size(0) * p.low_res.size(1);
    above_thresh += (p.iou > thresh).sum().item<int64_t>();
    return p;
  }
  torch::Tensor upscale_masks(const torch::Tensor& low_res) const override {
    upscaled += low_res.size(0) * low_res.size(1);
    return inner_.upscale_masks(low_res);
  }
  double thresh = 0;
  int64_t predicted = 0, above_thresh = 0;
  mutable int64_t upscaled = 0;

 private:
  Predictor& inner_;
};

void expect_same_records(const GenerateResult& a, const GenerateResult& b) {
  ASSERT_EQ(a.masks.size(), b.masks.size());
  for (size_t i = 0; i < a.masks.size(); ++i) {
    EXPECT_TRUE(a.masks[i].rle == b.masks[i].rle) << "mask " << i;
    EXPECT_EQ(a.masks[i].bbox, b.masks[i].bbox) << "mask " << i;
    EXPECT_EQ(a.masks[i].predicted_iou, b.masks[i].predicted_iou) << "mask " << i;
    EXPECT_EQ(a.masks[i].stability_score, b.masks[i].stability_score) << "mask " << i;
    EXPECT_EQ(a.masks[i].point_coords, b.masks[i].point_coords) << "mask " << i;
  }
}

}  // namespace

TEST(SamPerf, UpscaleMasksEqualsPredictTorchForAnySubset) {
  auto predictor = tiny_predictor();
  predictor->set_image(test::ramp_image(70, 90));
  const auto coords = prompts(5, predictor->input_size().height, predictor->input_size().width);
  const auto labels = torch::ones({5, 1}, torch::kInt32);
  const auto full = predictor->predict_torch(coords, labels, true);
  const auto low = predictor->predict_low_res(coords, labels, true);
  EXPECT_FALSE(low.masks.defined());
  EXPECT_TRUE(torch::equal(low.low_res, full.low_res));
  EXPECT_TRUE(torch::equal(low.iou, full.iou));
  EXPECT_TRUE(torch::equal(predictor->upscale_masks(low.low_res), full.masks));
  // Planes 1, 4 and 13 of the flattened (B * C) masks, upsampled on their own.
  const auto rows = torch::tensor({1, 4, 13}, torch::kInt64);
  const auto sub =
      predictor->upscale_masks(low.low_res.flatten(0, 1).index_select(0, rows).unsqueeze(0));
  EXPECT_TRUE(torch::equal(sub[0], full.masks.flatten(0, 1).index_select(0, rows)));
}

TEST(SamPerf, GeneratorUpsamplesOnlyMasksAboveIouThresholdAndKeepsTheMasks) {
  auto predictor = tiny_predictor();
  const cv::Mat image = test::ramp_image(60, 84);
  MaskGeneratorOptions o;
  o.points_per_side = 6;
  o.points_per_batch = 7;
  o.stability_score_thresh = 0;  // random tiny weights: low stability scores
  o.box_nms_thresh = 1.0;        // keep the duplicates: more records to compare
  o.crop_n_layers = 1;           // crops: uncropping and several set_image calls
  // Thresholds between the tiny model's predicted IoUs, so that the filter drops some.
  CountingPredictor probe(*predictor);
  probe.thresh = -1e9;
  MaskGenerator(probe, o).generate(image);
  ASSERT_GT(probe.predicted, 0);
  for (const double thresh : {0.0, 0.05, 0.1, 0.2}) {
    o.pred_iou_thresh = thresh;
    EagerPredictor eager(*predictor);
    const auto expected = MaskGenerator(eager, o).generate(image);
    CountingPredictor counting(*predictor);
    counting.thresh = thresh;
    const auto got = MaskGenerator(counting, o).generate(image);
    expect_same_records(got, expected);
    if (thresh == 0.0) {
      EXPECT_FALSE(got.masks.empty()) << "nothing compared";
    }
    EXPECT_EQ(counting.upscaled, thresh > 0 ? counting.above_thresh : counting.predicted)
        << "pred_iou_thresh " << thresh;
    std::cout << "pred_iou_thresh " << thresh << ": " << counting.upscaled << " of "
              << counting.predicted << " masks upsampled, " << got.masks.size() << " kept"
              << std::endl;
  }
}

TEST(SamPerf, DecoderSharesImageProjectionsExactly) {
  // vit_b's decoder geometry (256 channels, 64 x 64 tokens), random weights, 4 prompts; the
  // plain (reference) execution, whose cache is bit-exact.
  torch::manual_seed(0);
  c10::InferenceMode guard;
  MaskDecoder decoder(MaskDecoderOptions{});
  decoder->eval();
  decoder->fast = false;
  const int64_t B = 4;
  const auto image = torch::randn({1, 256, 64, 64});
  const auto pe = torch::randn({1, 256, 64, 64});
  const auto sparse = torch::randn({B, 2, 256});
  const auto dense = torch::randn({1, 256, 1, 1}).expand({B, -1, 64, 64});
  // Reference: a materialised dense embedding takes the per-prompt path.
  const auto [ref_masks, ref_iou] = decoder->forward(image, pe, sparse, dense.contiguous(), true);
  TwoWayImageCache cache;
  for (int call = 0; call < 2; ++call) {  // fills the cache, then reuses it
    const auto [masks, iou] = decoder->forward(image, pe, sparse, dense, true, &cache);
    EXPECT_TRUE(cache.defined());
    EXPECT_TRUE(torch::equal(masks, ref_masks))
        << "call " << call << ": max diff " << (masks - ref_masks).abs().max().item<double>();
    EXPECT_TRUE(torch::equal(iou, ref_iou)) << "call " << call;
  }
  // Without a cache (shared tokens, projections computed for this call only).
  const auto [masks, iou] = decoder->forward(image, pe, sparse, dense, true);
  EXPECT_TRUE(torch::equal(masks, ref_masks));
  EXPECT_TRUE(torch::equal(iou, ref_iou));
}

namespace {

// max |a - b| relative to max |b|, printed; the bound is fp32 rounding through the decoder.
double relative_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

}  // namespace

TEST(SamPerf, FastDecoderEqualsPlainWithinFp32Rounding) {
  // vit_b's decoder geometry, random weights, 5 prompts of 2 points; the fast execution (prompt
  // groups, folded attentions, token-wise upscaling of the used mask tokens) against the
  // reference's.
  torch::manual_seed(0);
  c10::InferenceMode guard;
  MaskDecoder decoder(MaskDecoderOptions{});
  decoder->eval();
  const int64_t B = 5;
  const auto image = torch::randn({1, 256, 64, 64});
  const auto pe = torch::randn({1, 256, 64, 64});
  const auto sparse = torch::randn({B, 2, 256});
  const auto shared_dense = torch::randn({1, 256, 1, 1}).expand({B, -1, 64, 64});
  const auto own_dense = torch::randn({B, 256, 64, 64}) * 0.1;  // as with mask inputs
  for (const bool multi : {true, false}) {
    for (const auto* dense : {&shared_dense, &own_dense}) {
      decoder->fast = false;
      const auto [ref_masks, ref_iou] = decoder->forward(image, pe, sparse, *dense, multi);
      ASSERT_EQ(ref_masks.size(1), multi ? 3 : 1);
      decoder->fast = true;
      TwoWayImageCache cache;
      for (const int64_t group : {int64_t{1}, int64_t{2}, B}) {
        for (const int64_t chunk : {int64_t{512}, int64_t{300}}) {
          decoder->prompt_group = group;
          decoder->upscale_chunk_tokens = chunk;
          const auto [masks, iou] = decoder->forward(image, pe, sparse, *dense, multi, &cache);
          const double dm = relative_diff(masks, ref_masks), di = relative_diff(iou, ref_iou);
          std::cout << (multi ? "multimask" : "single") << ", "
                    << (dense == &shared_dense ? "shared" : "per-prompt") << " tokens, group "
                    << group << ", chunk " << chunk << ": masks rel. diff " << dm << ", iou " << di
                    << std::endl;
          EXPECT_LE(dm, 1e-5);
          EXPECT_LE(di, 1e-5);
          const auto flips = ((masks > 0) != (ref_masks > 0)).sum().item<int64_t>();
          std::cout << "  " << flips << " of " << masks.numel() << " mask pixels flipped"
                    << std::endl;
        }
      }
      EXPECT_EQ(cache.defined(), dense == &shared_dense) << "cache only for shared tokens";
    }
  }
  // One prompt (the cache is not used: its dense embedding may come from a mask input).
  decoder->fast = false;
  const auto [ref1, ref1_iou] =
      decoder->forward(image, pe, sparse.narrow(0, 0, 1), own_dense.narrow(0, 0, 1), true);
  decoder->fast = true;
  TwoWayImageCache unused;
  const auto [one, one_iou] =
      decoder->forward(image, pe, sparse.narrow(0, 0, 1), own_dense.narrow(0, 0, 1), true, &unused);
  EXPECT_FALSE(unused.defined());
  EXPECT_LE(relative_diff(one, ref1), 1e-5);
  EXPECT_LE(relative_diff(one_iou, ref1_iou), 1e-5);
}

TEST(SamPerf, TokenUpscalingEqualsOutputUpscaling) {
  // Odd grids and block sizes that split rows: the pixel order (h, w, 2, 2, 2, 2) -> (4h, 4w).
  torch::manual_seed(4);
  c10::InferenceMode guard;
  MaskDecoderOptions o;
  o.transformer_dim = 32;
  MaskDecoder decoder(o);
  for (auto& p : decoder->output_upscaling->parameters()) p.normal_(0, 0.5);
  const int64_t B = 2, h = 5, w = 7;
  const auto keys = torch::randn({B, h * w, 32});
  const auto hyper = torch::randn({B, 3, 4});
  const auto up = decoder->output_upscaling->forward(keys.transpose(1, 2).reshape({B, 32, h, w}));
  const auto expected = torch::matmul(hyper, up.flatten(2)).view({B, 3, 4 * h, 4 * w});
  for (const int64_t chunk : {int64_t{1}, int64_t{3}, h * w, int64_t{1000}}) {
    decoder->upscale_chunk_tokens = chunk;
    const auto got = decoder->upscale_tokens(keys, hyper, h, w);
    EXPECT_LE(relative_diff(got, expected), 1e-5) << "chunk " << chunk;
  }
}

TEST(SamPerf, FastDecoderKeepsTinySamPredictions) {
  // The tiny random-weight SAM end to end (prompt encoder, decoder, upsampling), both paths.
  auto sam = make_sam(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
  c10::InferenceMode guard;
  torch::manual_seed(5);
  const auto x = torch::randn({1, 3, sam->config.image_size, sam->config.image_size});
  const auto embedding = sam->image_encoder->forward(x);
  const auto pe = sam->prompt_encoder->get_dense_pe();
  const auto coords = torch::rand({6, 1, 2}) * sam->config.image_size;
  const auto labels = torch::ones({6, 1}, torch::kInt32);
  auto [sparse, dense] =
      sam->prompt_encoder->forward(std::make_pair(coords, labels), std::nullopt, std::nullopt);
  sam->mask_decoder->fast = false;
  const auto [ref, ref_iou] = sam->mask_decoder->forward(embedding, pe, sparse, dense, true);
  sam->mask_decoder->fast = true;
  sam->mask_decoder->prompt_group = 4;
  const auto [got, got_iou] = sam->mask_decoder->forward(embedding, pe, sparse, dense, true);
  EXPECT_LE(relative_diff(got, ref), 1e-5);
  EXPECT_LE(relative_diff(got_iou, ref_iou), 1e-5);
}

TEST(SamPerf, PredictorCacheFollowsTheImage) {
  // The cache is per image: predictions after a second set_image equal a fresh predictor's.
  auto predictor = tiny_predictor();
  const auto labels = torch::ones({3, 1}, torch::kInt32);
  predictor->set_image(test::ramp_image(50, 70));
  const auto coords = prompts(3, predictor->input_size().height, predictor->input_size().width);
  predictor->predict_torch(coords, labels, true);
  cv::Mat other = test::ramp_image(50, 70);
  cv::flip(other, other, 1);
  predictor->set_image(other);
  const auto got = predictor->predict_torch(coords, labels, true);
  auto fresh = tiny_predictor();
  fresh->set_image(other);
  const auto expected = fresh->predict_torch(coords, labels, true);
  EXPECT_TRUE(torch::equal(got.masks, expected.masks));
  EXPECT_TRUE(torch::equal(got.iou, expected.iou));
}

TEST(SamPerf, BlockedEncoderAttentionEqualsExplicitPath) {
  torch::manual_seed(1);
  c10::InferenceMode guard;
  // Window-sized (2 windows of 14 x 14) and global-sized (24 x 20 grid) inputs, 3 heads of 16.
  for (const auto& [b, h, w] : {std::tuple<int64_t, int64_t, int64_t>{2, 14, 14}, {1, 24, 20}}) {
    EncoderAttention attn(48, 3, true, true, std::make_pair(h, w));
    attn->rel_pos_h.normal_(0, 0.5);
    attn->rel_pos_w.normal_(0, 0.5);
    const auto x = torch::randn({b, h, w, 48});
    attn->blocked = false;
    const auto expected = attn->forward(x);
    attn->blocked = true;
    // Budgets: one query row, several rows, whole heads, several heads per block; the fused
    // bias + softmax kernel and the reference's arithmetic per block.
    const int64_t row = w * h * w * 4;
    for (const bool fused : {true, false}) {
      attn->fused_softmax = fused;
      for (const int64_t budget : {int64_t{1}, 3 * row, h * row, 4 * h * row}) {
        attn->block_bytes = budget;
        const auto got = attn->forward(x);
        const double diff = (got - expected).abs().max().item<double>();
        EXPECT_LE(diff, 1e-5 * expected.abs().max().item<double>())
            << b << "x" << h << "x" << w << " budget " << budget << " fused " << fused;
        std::cout << b << "x" << h << "x" << w << " budget " << budget << " fused softmax " << fused
                  << ": max diff " << diff << (torch::equal(got, expected) ? " (bit-exact)" : "")
                  << std::endl;
      }
    }
  }
}

TEST(SamPerf, BlockedEncoderKeepsTinySamEmbedding) {
  auto sam = make_sam(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
  c10::InferenceMode guard;
  torch::manual_seed(2);
  const auto x = torch::randn({1, 3, sam->config.image_size, sam->config.image_size});
  const auto blocked = sam->image_encoder->forward(x);
  for (const auto& blk : *sam->image_encoder->blocks)
    blk->as<EncoderBlockImpl>()->attn->blocked = false;
  const auto expected = sam->image_encoder->forward(x);
  EXPECT_LE((blocked - expected).abs().max().item<double>(), 1e-5);
}

TEST(SamPerf, LinearRowsEqualsLinear) {
  torch::manual_seed(6);
  c10::InferenceMode guard;
  for (const bool bias : {true, false}) {
    torch::nn::Linear l(torch::nn::LinearOptions(24, 40).bias(bias));
    for (const auto& x :
         {torch::randn({3, 5, 24}), torch::randn({2, 3, 4, 24}), torch::randn({7, 24})}) {
      const auto got = linear_rows(l, x), expected = l->forward(x);
      EXPECT_EQ(got.sizes(), expected.sizes());
      EXPECT_LE(relative_diff(got, expected), 1e-6) << "bias " << bias << " " << x.sizes();
    }
  }
}

TEST(SamPerf, EncoderFusedLinearKeepsTinySamEmbedding) {
  // The encoder as it runs (blocked attention, linear layers as one addmm each) against the
  // reference's arithmetic (explicit attention, matmul + bias).
  auto sam = make_sam(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU);
  c10::InferenceMode guard;
  torch::manual_seed(2);
  const auto x = torch::randn({1, 3, sam->config.image_size, sam->config.image_size});
  const auto fast = sam->image_encoder->forward(x);
  for (const auto& blk : *sam->image_encoder->blocks) {
    auto* b = blk->as<EncoderBlockImpl>();
    b->attn->blocked = b->attn->fused_linear = b->mlp->fused_linear = false;
  }
  const auto expected = sam->image_encoder->forward(x);
  const double diff = relative_diff(fast, expected);
  std::cout << "tiny SAM embedding, fast vs reference arithmetic: rel. diff " << diff << std::endl;
  EXPECT_LE(diff, 1e-5);
}

TEST(SamPerf, ProfileOpsBreaksDownSamScopes) {
  // sdb-sam-bench --profile: top-level operators, and the operators inside "sdb::sam_*"
  // scopes as "scope > op"; other scopes keep only their total.
  c10::InferenceMode guard;
  const auto x = torch::randn({32, 32});
  auto names = [](const nlohmann::json& ops) {
    std::set<std::string> out;
    for (const auto& op : ops) {
      EXPECT_GE(op["ms"].get<double>(), 0.0);
      EXPECT_GE(op["calls"].get<int>(), 1);
      out.insert(op["op"].get<std::string>());
    }
    return out;
  };
  const auto sam = names(profile_ops([&] {
    RECORD_FUNCTION("sdb::sam_test_scope", std::vector<c10::IValue>());
    torch::mm(x, x);
  }));
  EXPECT_TRUE(sam.count("sdb::sam_test_scope"));
  EXPECT_TRUE(sam.count("sdb::sam_test_scope > aten::mm"));
  const auto other = names(profile_ops([&] {
    RECORD_FUNCTION("sdb::other_scope", std::vector<c10::IValue>());
    torch::mm(x, x);
  }));
  EXPECT_TRUE(other.count("sdb::other_scope"));
  for (const auto& name : other) EXPECT_EQ(name.find(" > "), std::string::npos) << name;
}

TEST(SamPrecision, NamesAndRefusalWithoutNativeBf16) {
  EXPECT_EQ(precision_from_name("fp32"), Precision::fp32);
  EXPECT_EQ(precision_from_name("bf16"), Precision::bf16);
  // One parser with the deblurring networks (models::parse_precision): the same names,
  // dtypes and error, which names the flag, the value and the valid values.
  for (const std::string name : {"fp32", "bf16"})
    EXPECT_EQ(precision_dtype(precision_from_name(name)), models::parse_precision(name, "x"));
  const auto bad = test::error_of<ConfigError>([] { precision_from_name("fp16", "--precision"); });
  EXPECT_EQ(bad,
            test::error_of<ConfigError>([] { models::parse_precision("fp16", "--precision"); }));
  for (const char* part : {"--precision", "'fp16'", "fp32, bf16"})
    EXPECT_NE(bad.find(part), std::string::npos) << bad;
  EXPECT_EQ(precision_name(Precision::bf16), "bf16");
  // A CPU without native bf16 refuses it (by name), CUDA and fp32 never do.
  const auto message =
      test::error_of([] { check_precision_supported(Precision::bf16, torch::kCPU, false); });
  EXPECT_NE(message.find("avx512_bf16"), std::string::npos) << message;
  EXPECT_NO_THROW(check_precision_supported(Precision::bf16, torch::kCPU, true));
  EXPECT_NO_THROW(check_precision_supported(Precision::bf16, torch::Device("cuda"), false));
  EXPECT_NO_THROW(check_precision_supported(Precision::fp32, torch::kCPU, false));
  if (!models::cpu_supports_bf16()) {
    EXPECT_THROW(make_predictor(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU,
                                false, Precision::bf16),
                 Error);
  }
}

TEST(SamPrecision, Bf16MasksAgreeWithFp32) {
  if (!models::cpu_supports_bf16())
    GTEST_SKIP() << "this CPU has no native bf16 (refusal tested above)";
  auto fp32 = tiny_predictor();
  auto bf16 = make_predictor(test::tiny_sam_config(), test::tiny_sam_checkpoint(), torch::kCPU,
                             false, Precision::bf16);
  const cv::Mat image = test::ramp_image(70, 90);
  fp32->set_image(image);
  bf16->set_image(image);
  EXPECT_EQ(bf16->image_embedding().scalar_type(), torch::kBFloat16);
  const auto coords = prompts(16, fp32->input_size().height, fp32->input_size().width);
  const auto labels = torch::ones({16, 1}, torch::kInt32);
  const auto a = fp32->predict_torch(coords, labels, true);
  const auto b = bf16->predict_torch(coords, labels, true);
  EXPECT_EQ(b.masks.scalar_type(), torch::kFloat);
  EXPECT_EQ(b.iou.scalar_type(), torch::kFloat);
  const auto ma = a.masks > 0, mb = b.masks > 0;
  const auto inter = (ma & mb).flatten(2).sum(-1).to(torch::kDouble);
  const auto uni = (ma | mb).flatten(2).sum(-1).to(torch::kDouble);
  const auto iou = torch::where(uni > 0, inter / uni.clamp_min(1), torch::ones_like(uni));
  const double mean_iou = iou.mean().item<double>(), min_iou = iou.min().item<double>();
  const double iou_diff = (a.iou - b.iou).abs().max().item<double>();
  std::cout << "bf16 vs fp32, tiny SAM, 48 masks: mean mask IoU " << mean_iou << ", min " << min_iou
            << ", largest predicted-IoU difference " << iou_diff << std::endl;
  EXPECT_GE(mean_iou, 0.97);
  EXPECT_GE(min_iou, 0.85);
  EXPECT_LE(iou_diff, 0.05);
  // The generator runs on it and returns float32 embeddings.
  MaskGeneratorOptions o;
  o.points_per_side = 4;
  o.pred_iou_thresh = 0;
  o.stability_score_thresh = 0;
  const auto r = MaskGenerator(*bf16, o).generate(image, /*keep_embedding=*/true);
  EXPECT_EQ(r.image_embedding.scalar_type(), torch::kFloat);
}

TEST(SamPrecision, Bf16ChangesTheMaskCacheKeyAndFp32KeepsIt) {
  masks::MaskSourceOptions o;
  o.type = "sam";
  o.checkpoint = test::tiny_sam_checkpoint();
  const std::string fp32 = masks::mask_cache_settings(o);
  EXPECT_EQ(fp32.find("precision"), std::string::npos) << "fp32 keys are those of before";
  o.precision = "bf16";
  const std::string bf16 = masks::mask_cache_settings(o);
  EXPECT_NE(bf16, fp32);
  EXPECT_NE(bf16.find("precision=bf16\n"), std::string::npos) << bf16;
  // The YAML key is read and checked.
  YAML::Node keep = YAML::Load(
      "mask_source: {type: sam, checkpoint: x.pth, precision: bf16}\n"
      "bad: {mask_source: {type: sam, checkpoint: x.pth, precision: fp16}}\n");
  config::Section good(keep, "", "test.yml");
  EXPECT_EQ(masks::parse_mask_source(good, "PairedImageGroupMaskDataset").precision, "bf16");
  config::Section bad = good.child("bad");
  const auto message = test::error_of<ConfigError>(
      [&] { masks::parse_mask_source(bad, "PairedImageGroupMaskDataset"); });
  EXPECT_NE(message.find("mask_source.precision"), std::string::npos) << message;
}

// Opt-in interleaved A/B timings for direction only (random vit_b weights, this thread count;
// process CPU time is the steadier figure on a shared machine):
//   SAMDEBLUR_SAM_BENCH=1 OMP_NUM_THREADS=1 sdb-tests --gtest_filter='SamPerfBench.*'
// The figures to publish come from scripts/bench_sam.sh on an idle machine.
namespace {

template <class F>
std::pair<double, double> timed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = process_cpu_seconds();
  f();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          process_cpu_seconds() - c0};
}

void report(const std::string& what, const std::pair<double, double>& t) {
  std::cout << what << ": " << t.first << " s wall, " << t.second << " s CPU" << std::endl;
}

}  // namespace

TEST(SamPerfBench, EncoderBlockedVsExplicit) {
  if (!std::getenv("SAMDEBLUR_SAM_BENCH")) GTEST_SKIP() << "set SAMDEBLUR_SAM_BENCH=1 to run";
  torch::manual_seed(0);
  Sam model(SamConfig::vit_b());
  c10::InferenceMode guard;
  const auto x = torch::randn({1, 3, 1024, 1024});
  auto set = [&](bool blocked, bool fused, int64_t budget, bool softmax) {
    for (const auto& blk : *model->image_encoder->blocks) {
      auto* b = blk->as<EncoderBlockImpl>();
      b->attn->blocked = blocked;
      b->attn->block_bytes = budget;
      b->attn->fused_linear = b->mlp->fused_linear = fused;
      b->attn->fused_softmax = softmax;
    }
  };
  const std::vector<std::tuple<std::string, bool, bool, int64_t, bool>> cases = {
      {"explicit, reference linear", false, false, 0, false},
      {"blocked 1 MiB, reference linear, ATen softmax", true, false, int64_t{1} << 20, false},
      {"blocked 4 MiB, fused linear, ATen softmax", true, true, int64_t{4} << 20, false},
      {"blocked 1 MiB, fused linear, fused softmax", true, true, int64_t{1} << 20, true},
      {"blocked 4 MiB, fused linear, fused softmax", true, true, int64_t{4} << 20, true},
      {"blocked 16 MiB, fused linear, fused softmax", true, true, int64_t{16} << 20, true}};
  torch::Tensor reference;
  for (int round = 0; round < 2; ++round) {
    for (const auto& [name, blocked, fused, budget, softmax] : cases) {
      set(blocked, fused, budget, softmax);
      torch::Tensor out;
      report("vit_b encoder " + name, timed([&] { out = model->image_encoder->forward(x); }));
      if (!reference.defined()) reference = out;
      if (round == 0)
        std::cout << "  max |difference| to the first "
                  << (out - reference).abs().max().item<double>() << std::endl;
    }
  }
}

namespace {

// One generator batch at vit_b's decoder size (the opt-in decoder benchmarks): image
// embedding and positional encoding (1, 256, 64, 64), 64 prompts' sparse embeddings
// (64, 2, 256) and the no-mask dense embedding broadcast over them. Draws from the global
// generator.
struct GeneratorBatch {
  torch::Tensor image, pe, sparse, dense;
};
GeneratorBatch generator_batch() {
  const int64_t prompts = 64;
  GeneratorBatch b;
  b.image = torch::randn({1, 256, 64, 64});
  b.pe = torch::randn({1, 256, 64, 64});
  b.sparse = torch::randn({prompts, 2, 256});
  b.dense = torch::randn({1, 256, 1, 1}).expand({prompts, -1, 64, 64});
  return b;
}

}  // namespace

TEST(SamPerfBench, DecoderSharedVsPerPrompt) {
  if (!std::getenv("SAMDEBLUR_SAM_BENCH")) GTEST_SKIP() << "set SAMDEBLUR_SAM_BENCH=1 to run";
  torch::manual_seed(0);
  c10::InferenceMode guard;
  MaskDecoder decoder(MaskDecoderOptions{});
  const GeneratorBatch batch = generator_batch();
  const auto &image = batch.image, &pe = batch.pe, &sparse = batch.sparse, &dense = batch.dense;
  TwoWayImageCache cache;
  decoder->forward(image, pe, sparse.slice(0, 0, 2), dense.slice(0, 0, 2), true, &cache);
  for (int round = 0; round < 2; ++round) {
    report("decoder, 64 prompts, per prompt ",
           timed([&] { decoder->forward(image, pe, sparse, dense.contiguous(), true); }));
    report("decoder, 64 prompts, shared+cache",
           timed([&] { decoder->forward(image, pe, sparse, dense, true, &cache); }));
  }
}

TEST(SamPerfBench, DecoderFastVsPlain) {
  // One generator batch (64 prompts, shared image tokens, cached projections), plain against
  // the fast execution at several prompt group and upscaling block sizes; interleaved.
  if (!std::getenv("SAMDEBLUR_SAM_BENCH")) GTEST_SKIP() << "set SAMDEBLUR_SAM_BENCH=1 to run";
  torch::manual_seed(0);
  c10::InferenceMode guard;
  MaskDecoder decoder(MaskDecoderOptions{});
  const GeneratorBatch batch = generator_batch();
  const auto &image = batch.image, &pe = batch.pe, &sparse = batch.sparse, &dense = batch.dense;
  TwoWayImageCache plain_cache, fast_cache;
  decoder->fast = false;
  const auto ref = decoder->forward(image, pe, sparse, dense, true, &plain_cache).first;
  std::vector<std::pair<int64_t, int64_t>> configs = {{1, 512}, {2, 512},  {4, 512},
                                                      {1, 256}, {1, 1024}, {1, 4096}};
  if (const char* c = std::getenv("SAMDEBLUR_SAM_DECODER_CONFIGS")) {  // "g:chunk,g:chunk"
    configs.clear();
    for (std::string s = c; !s.empty();) {
      const auto comma = s.find(',');
      const std::string item = s.substr(0, comma);
      configs.emplace_back(std::stoll(item.substr(0, item.find(':'))),
                           std::stoll(item.substr(item.find(':') + 1)));
      s = comma == std::string::npos ? "" : s.substr(comma + 1);
    }
  }
  for (int round = 0; round < 2; ++round) {
    decoder->fast = false;
    report("decoder, 64 prompts, plain",
           timed([&] { decoder->forward(image, pe, sparse, dense, true, &plain_cache); }));
    decoder->fast = true;
    for (const auto& [group, chunk] : configs) {
      decoder->prompt_group = group;
      decoder->upscale_chunk_tokens = chunk;
      torch::Tensor masks;
      report("decoder, 64 prompts, fast, group " + std::to_string(group) + ", chunk " +
                 std::to_string(chunk),
             timed([&] {
               masks = decoder->forward(image, pe, sparse, dense, true, &fast_cache).first;
             }));
      if (round == 0) std::cout << "  rel. diff " << relative_diff(masks, ref) << std::endl;
    }
  }
}

TEST(SamPerfBench, GeneratorLazyVsEagerUpsampling) {
  if (!std::getenv("SAMDEBLUR_SAM_BENCH")) GTEST_SKIP() << "set SAMDEBLUR_SAM_BENCH=1 to run";
  torch::manual_seed(0);
  auto predictor = make_predictor(SamConfig::vit_b(), "", torch::kCPU);
  EagerPredictor eager(*predictor);
  const cv::Mat image = test::ramp_image(512, 512);
  MaskGeneratorOptions o;
  o.points_per_side = 8;  // 64 prompts, one batch; official default filters
  for (int round = 0; round < 2; ++round)
    for (Predictor* p : {static_cast<Predictor*>(&eager), predictor.get()}) {
      const auto r = MaskGenerator(*p, o).generate(image);
      std::cout << (p == predictor.get() ? "lazy " : "eager") << ": decoder " << r.times.decoder
                << " s, post " << r.times.post << " s, decoder + post "
                << r.times.decoder + r.times.post << " s, " << r.masks.size() << " masks"
                << std::endl;
    }
}
