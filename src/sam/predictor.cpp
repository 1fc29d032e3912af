// make_predictor: segment_anything/predictor.py (SamPredictor.set_image / set_torch_image /
// predict_torch with return_logits=True) on top of sam_model.h and transforms.h.
#include "samdeblur/sam/predictor.h"

#include <opencv2/core.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/sam/sam_model.h"
#include "samdeblur/sam/transforms.h"

namespace samdeblur::sam {

PointPrediction Predictor::predict_prompts(const torch::Tensor& point_coords,
                                           const torch::Tensor& point_labels,
                                           const torch::Tensor& boxes,
                                           const torch::Tensor& mask_input, bool multimask_output) {
  if (boxes.defined() || mask_input.defined() || !point_coords.defined())
    throw Error("this Predictor supports point prompts only (no boxes or mask inputs)");
  return predict_torch(point_coords, point_labels, multimask_output);
}

torch::Tensor Predictor::upscale_masks(const torch::Tensor& /*low_res*/) const {
  throw Error("this Predictor has no upscale_masks (its predict_low_res returns full masks)");
}

namespace {

class SamPredictor final : public Predictor {
 public:
  // dtype: kFloat, kHalf (CUDA) or kBFloat16, the model's parameters' dtype.
  SamPredictor(Sam model, const torch::Device& device, torch::ScalarType dtype)
      : model_(std::move(model)),
        transform_(model_->config.image_size),
        device_(device),
        dtype_(dtype) {}

  void set_image(const cv::Mat& rgb_u8) override {
    if (rgb_u8.empty() || rgb_u8.type() != CV_8UC3)
      throw Error("SAM set_image expects a non-empty RGB uint8 HxWx3 image (CV_8UC3), got type " +
                  std::to_string(rgb_u8.type()) + " size " + std::to_string(rgb_u8.cols) + "x" +
                  std::to_string(rgb_u8.rows));
    c10::InferenceMode guard;
    features_ = torch::Tensor();
    decoder_cache_ = TwoWayImageCache{};
    cv::Mat img = rgb_u8.isContinuous() ? rgb_u8 : rgb_u8.clone();
    auto hwc = torch::from_blob(img.data, {img.rows, img.cols, 3}, torch::kUInt8);
    auto resized = transform_.apply_image(hwc);  // (h, w, 3) uint8, new memory
    original_ = {rgb_u8.rows, rgb_u8.cols};
    input_ = {resized.size(0), resized.size(1)};
    auto x = resized.to(device_).permute({2, 0, 1}).contiguous().unsqueeze(0);
    x = model_->preprocess(x);  // (1, 3, S, S) float32
    if (dtype_ != torch::kFloat) x = x.to(dtype_);
    features_ = model_->image_encoder->forward(x);
  }

  PointPrediction predict_torch(const torch::Tensor& point_coords,
                                const torch::Tensor& point_labels, bool multimask_output) override {
    return predict_prompts(point_coords, point_labels, torch::Tensor(), torch::Tensor(),
                           multimask_output);
  }

  PointPrediction predict_low_res(const torch::Tensor& point_coords,
                                  const torch::Tensor& point_labels,
                                  bool multimask_output) override {
    return predict(point_coords, point_labels, torch::Tensor(), torch::Tensor(), multimask_output,
                   /*upscale=*/false);
  }

  torch::Tensor upscale_masks(const torch::Tensor& low_res) const override {
    require_image();
    c10::InferenceMode guard;
    return model_.ptr()->postprocess_masks(low_res.to(torch::kFloat), input_, original_);
  }

  PointPrediction predict_prompts(const torch::Tensor& point_coords,
                                  const torch::Tensor& point_labels, const torch::Tensor& boxes,
                                  const torch::Tensor& mask_input, bool multimask_output) override {
    return predict(point_coords, point_labels, boxes, mask_input, multimask_output,
                   /*upscale=*/true);
  }

 private:
  PointPrediction predict(const torch::Tensor& point_coords, const torch::Tensor& point_labels,
                          const torch::Tensor& boxes, const torch::Tensor& mask_input,
                          bool multimask_output, bool upscale) {
    require_image();
    c10::InferenceMode guard;
    std::optional<std::pair<torch::Tensor, torch::Tensor>> points;
    if (point_coords.defined()) {
      if (!point_labels.defined())
        throw Error("SAM predict: point_labels must be given with point_coords");
      if (point_coords.dim() != 3 || point_coords.size(2) != 2 || point_labels.dim() != 2 ||
          point_labels.size(0) != point_coords.size(0) ||
          point_labels.size(1) != point_coords.size(1))
        throw Error("SAM predict: point_coords must be (B, N, 2) and point_labels (B, N), got " +
                    shape(point_coords) + " and " + shape(point_labels));
      points = std::make_pair(point_coords.to(device_), point_labels.to(device_));
    }
    std::optional<torch::Tensor> box_opt, mask_opt;
    if (boxes.defined()) box_opt = boxes.to(device_, torch::kFloat).reshape({-1, 4});
    if (mask_input.defined()) mask_opt = mask_input.to(device_, dtype_);
    auto [sparse, dense] = model_->prompt_encoder->forward(points, box_opt, mask_opt);
    if (!dense_pe_.defined()) dense_pe_ = model_->prompt_encoder->get_dense_pe();
    auto [low, iou] = model_->mask_decoder->forward(features_, dense_pe_, sparse, dense,
                                                    multimask_output, &decoder_cache_);
    PointPrediction out;
    out.low_res = low.to(torch::kFloat);
    out.iou = iou.to(torch::kFloat);
    if (upscale) out.masks = model_->postprocess_masks(out.low_res, input_, original_);
    return out;
  }

 public:
  torch::Tensor apply_coords(const torch::Tensor& coords) const override {
    require_image();
    return transform_.apply_coords(coords, original_);
  }
  torch::Tensor image_embedding() const override {
    require_image();
    return features_;
  }
  cv::Size original_size() const override {
    return {static_cast<int>(original_.second), static_cast<int>(original_.first)};
  }
  cv::Size input_size() const override {
    return {static_cast<int>(input_.second), static_cast<int>(input_.first)};
  }
  const SamConfig& config() const override { return model_->config; }
  torch::Device device() const override { return device_; }
  double mask_threshold() const override { return model_->config.mask_threshold; }

 private:
  void require_image() const {
    if (!features_.defined()) throw Error("SAM predictor: call set_image before predicting");
  }
  static std::string shape(const torch::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
  }

  Sam model_;
  ResizeLongestSide transform_;
  torch::Device device_;
  torch::ScalarType dtype_;
  torch::Tensor features_;
  torch::Tensor dense_pe_;  // prompt_encoder.get_dense_pe(): fixed by the weights
  // The first decoder layer's prompt-independent projections of features_ (TwoWayImageCache),
  // filled by the first prediction after set_image.
  TwoWayImageCache decoder_cache_;
  std::pair<int64_t, int64_t> original_{0, 0}, input_{0, 0};  // (H, W)
};

}  // namespace

std::unique_ptr<Predictor> make_predictor(const SamConfig& config, const std::string& checkpoint,
                                          const torch::Device& device, bool half,
                                          Precision precision) {
  check_precision_supported(precision, device);
  torch::ScalarType dtype = precision_dtype(precision);
  if (half && precision == Precision::bf16) {
    log::warn("SAM: --half and precision bf16 given; running bfloat16");
  } else if (half && !device.is_cuda()) {
    log::warn("SAM half precision is only used on CUDA; running float32 on " + device.str());
  } else if (half) {
    dtype = torch::kHalf;
  }
  Sam model = make_sam(config, checkpoint, device);
  if (dtype != torch::kFloat) model->to(dtype);
  // LibTorch 1.13's oneDNN bf16 ConvTranspose2d on the CPU rejects its own weight layout
  // ("expected input ... to have 8 channels"): the decoder's output_upscaling (two small
  // transposed convolutions) and the mask product after it stay float32 there.
  if (dtype == torch::kBFloat16 && !device.is_cuda())
    model->mask_decoder->output_upscaling->to(torch::kFloat);
  return std::make_unique<SamPredictor>(std::move(model), device, dtype);
}

}  // namespace samdeblur::sam
