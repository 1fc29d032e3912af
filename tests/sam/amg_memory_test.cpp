// The automatic mask generator's memory does not grow with the full-resolution size of the
// masks that NMS drops (sam/mask_generator.h): with a lazily upsampling predictor, a candidate
// whose RLE is larger than its low-resolution logits is held as those logits, and only the
// masks that survive the crop's NMS are encoded again at full resolution; the records equal
// those of the eager path.
#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <cstddef>
#include <iostream>

#include "samdeblur/sam/mask_generator.h"

namespace {

using namespace samdeblur::sam;

// tcmalloc's C API when the executable links it (weak: null otherwise).
extern "C" int MallocExtension_GetNumericProperty(const char* property, size_t* value)
    __attribute__((weak));

// Bytes the program holds on the heap: tcmalloc's count when linked (our executables link it
// when found), else glibc's (all arenas plus mmapped chunks).
int64_t heap_in_use() {
  size_t bytes = 0;
  if (MallocExtension_GetNumericProperty &&
      MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &bytes))
    return static_cast<int64_t>(bytes);
  const struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

// Whether heap_in_use sees a 16 MB allocation (not under sanitizers' allocators).
bool heap_is_measurable() {
  const int64_t before = heap_in_use();
  std::vector<char> block(16 << 20, 1);
  const bool seen = heap_in_use() - before >= (16 << 20);
  return seen && block[12345] == 1;
}

// Every mask covers the whole image (the same box: NMS keeps one per batch of candidates) in
// horizontal stripes two pixels high, so each full-resolution mask has h / 2 runs per column
// (an RLE of about w * h / 2 counts, 1 MB at 512 x 512) while its low-resolution logits are
// 16 x 16. Low-resolution logits differ per prompt, predicted IoUs too (a strict NMS order).
// `lazy`: predict_low_res leaves the full-resolution masks to upscale_masks; otherwise it
// returns them (the generator's eager path). Heap use is sampled at each predict_low_res call.
class StripedPredictor : public Predictor {
 public:
  explicit StripedPredictor(bool lazy) : lazy_(lazy) { cfg_.image_size = 64; }
  void set_image(const cv::Mat& image) override { size_ = image.size(); }
  PointPrediction predict_torch(const torch::Tensor& coords, const torch::Tensor& labels,
                                bool multimask) override {
    PointPrediction p = predict_low_res(coords, labels, multimask);
    p.masks = upscale_masks(p.low_res);
    return p;
  }
  PointPrediction predict_low_res(const torch::Tensor& coords, const torch::Tensor&,
                                  bool) override {
    heap_samples.push_back(heap_in_use());
    const int64_t b = coords.size(0);
    const auto x = coords.select(2, 0).to(torch::kFloat32).reshape({b, 1, 1, 1});
    PointPrediction p;
    p.low_res = 1.0 + x * 1e-3 + torch::arange(3, torch::kFloat32).reshape({1, 3, 1, 1}) +
                torch::zeros({b, 3, 16, 16});
    p.iou = (x.reshape({b, 1}) * 1e-3 + torch::arange(3, torch::kFloat32).unsqueeze(0) * 0.1)
                .contiguous();
    if (!lazy_) p.masks = upscale_masks(p.low_res);
    return p;
  }
  torch::Tensor upscale_masks(const torch::Tensor& low_res) const override {
    const auto up = torch::nn::functional::interpolate(
        low_res.to(torch::kFloat32), torch::nn::functional::InterpolateFuncOptions()
                                         .size(std::vector<int64_t>{size_.height, size_.width})
                                         .mode(torch::kBilinear)
                                         .align_corners(false));
    const auto stripes =
        1.0 - 2.0 * (torch::arange(size_.height, torch::kInt64).div(2, "floor").remainder(2))
                        .to(torch::kFloat32)
                        .reshape({-1, 1});  // +1, +1, -1, -1, ... down each column
    return up * stripes;
  }
  torch::Tensor apply_coords(const torch::Tensor& c) const override { return c; }
  torch::Tensor image_embedding() const override { return torch::zeros({1, 256, 64, 64}); }
  cv::Size original_size() const override { return size_; }
  cv::Size input_size() const override { return size_; }
  const SamConfig& config() const override { return cfg_; }
  torch::Device device() const override { return torch::kCPU; }
  double mask_threshold() const override { return 0.0; }

  std::vector<int64_t> heap_samples;

 private:
  bool lazy_;
  SamConfig cfg_;
  cv::Size size_;
};

}  // namespace

TEST(MaskGeneratorMemory, CandidatesDroppedByNmsAreNeverHeldAtFullResolution) {
  if (!heap_is_measurable()) GTEST_SKIP() << "this allocator reports no heap use";
  const cv::Mat image(512, 512, CV_8UC3, cv::Scalar(90, 120, 150));
  MaskGeneratorOptions o;
  o.points_per_side = 4;  // 16 prompts x 3 masks = 48 candidates, all kept by the filters
  o.points_per_batch = 4;
  o.pred_iou_thresh = 0;
  o.stability_score_thresh = 0;
  o.output_mode = OutputMode::uncompressed_rle;
  std::vector<GenerateResult> results;
  std::vector<int64_t> growth;
  for (const bool lazy : {false, true}) {
    StripedPredictor predictor(lazy);
    results.push_back(MaskGenerator(predictor, o).generate(image));
    const auto& s = predictor.heap_samples;
    ASSERT_EQ(s.size(), 4u);
    growth.push_back(*std::max_element(s.begin(), s.end()) - s.front());
  }
  // Same records either way: one mask (NMS keeps the best of the identical boxes).
  ASSERT_EQ(results[0].masks.size(), 1u);
  ASSERT_EQ(results[1].masks.size(), results[0].masks.size());
  EXPECT_EQ(results[1].masks[0].rle, results[0].masks[0].rle);
  EXPECT_EQ(results[1].masks[0].area, results[0].masks[0].area);
  EXPECT_EQ(results[1].masks[0].predicted_iou, results[0].masks[0].predicted_iou);
  EXPECT_EQ(results[1].masks[0].stability_score, results[0].masks[0].stability_score);
  const int64_t rle_bytes =
      static_cast<int64_t>(results[0].masks[0].rle.counts.size() * sizeof(int64_t));
  EXPECT_GE(rle_bytes, 512 * 256 * 8);
  // The eager path holds the 36 candidates' RLEs of the first three batches at the last
  // sample (the measurement sees them); the lazy one holds only their 16 x 16 logits.
  std::cout << "heap growth over the candidate batches: eager " << growth[0] << " B, lazy "
            << growth[1] << " B (one RLE " << rle_bytes << " B)" << std::endl;
  EXPECT_GT(growth[0], 30 * rle_bytes) << "eager path";
  EXPECT_LT(growth[1], 2 * rle_bytes) << "lazy path: heap growth over the candidate batches";
}
