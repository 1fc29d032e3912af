// PSNRLoss; mirrors basicsr/models/losses/losses.py of SAM-Deblur.
#include "samdeblur/train/loss.h"

#include <cmath>

namespace samdeblur::train {

torch::Tensor psnr_loss(const torch::Tensor& pred, const torch::Tensor& target, double loss_weight,
                        bool to_y) {
  TORCH_CHECK(pred.dim() == 4, "psnr_loss: expected (B, C, H, W) pred, got ", pred.sizes());
  TORCH_CHECK(pred.sizes() == target.sizes(), "psnr_loss: pred ", pred.sizes(), " and target ",
              target.sizes(), " differ in shape");
  torch::Tensor p = pred, t = target;
  if (to_y) {
    TORCH_CHECK(pred.size(1) == 3, "psnr_loss(to_y): expected 3 channels, got ", pred.sizes());
    // float32 coefficients, as torch.tensor([...]) in the official class.
    const auto coef =
        torch::tensor({65.481f, 128.553f, 24.966f}, pred.options().dtype(torch::kFloat))
            .reshape({1, 3, 1, 1});
    p = (p * coef).sum(1).unsqueeze(1) + 16.0;
    t = (t * coef).sum(1).unsqueeze(1) + 16.0;
    p = p / 255.0;
    t = t / 255.0;
  }
  // Python evaluates loss_weight * scale first (a double), then times the tensor.
  const double scale = loss_weight * (10.0 / std::log(10.0));
  return torch::log((p - t).pow(2).mean({1, 2, 3}) + 1e-8).mean() * scale;
}

}  // namespace samdeblur::train
