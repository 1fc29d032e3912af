#pragma once
// Training losses. Reference: SAM-Deblur basicsr/models/losses/losses.py (PSNRLoss).
#include <torch/torch.h>

namespace samdeblur::train {

// BasicSR PSNRLoss, reduction 'mean' (the only one the official class accepts):
//   loss_weight * 10/ln(10) * mean_b( log( mean_{c,h,w} (pred_b - target_b)^2 + 1e-8 ) )
// pred, target: (B, C, H, W) float, same shape. With to_y, both are first
// mapped to (B, 1, H, W) by (x * [65.481, 128.553, 24.966]).sum(channels) + 16,
// then / 255 (the official toY; C must be 3, channel order RGB as in the
// batches). Differentiable w.r.t. pred (and target). Same op order as the
// official, so float32 results agree to the last bit on the same backend.
// Throws c10::Error naming the shapes for a rank other than 4 or a mismatch.
torch::Tensor psnr_loss(const torch::Tensor& pred, const torch::Tensor& target,
                        double loss_weight = 1.0, bool to_y = false);

}  // namespace samdeblur::train
