#pragma once
// The training loop of `sdb-train`, mirroring SAM-Deblur's basicsr/train.py +
// ImageRestorationModel.optimize_parameters:
//   for current_iter = start + 1 .. total_iter:
//     lr = LrSchedule.lr(current_iter) (warm-up included), set on the optimizer
//     batch = TrainLoader.next()            (crops, flips, rotations, masks)
//     zero_grad; pred = net(lq[, masks]); loss = PSNRLoss(pred, gt)
//       (+ 0 * sum(params), so every parameter has a gradient, as the official)
//     backward; [DDP: bucketed gradient all-reduce, averaged]
//     clip_grad_norm_(params, 0.01) when train.use_grad_clip (default true)
//     optimizer.step()
//     log every logger.print_freq (and at iter 1), checkpoint every
//     logger.save_checkpoint_freq, validate every val.val_freq (and at iter 1)
// and a final checkpoint + validation at total_iter.
//
// Exit paths: finished; interrupted (SIGINT/SIGTERM via request_stop(): the
// current iteration completes, a checkpoint is written, run() returns); a
// non-finite loss stops the run before the step (nothing is written, the last
// checkpoint stays valid) unless train.skip_nonfinite, which skips the step.
//
// Distributed: every rank runs the same loop; rank 0 writes logs, metrics,
// TensorBoard and checkpoints; the stop flag and the non-finite flag are
// agreed by all-reduce each iteration, so all ranks leave the loop together.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "samdeblur/train/distributed.h"
#include "samdeblur/train/train_config.h"

namespace samdeblur::train {

struct TrainerOptions {
  std::string resume;          // "" = fresh, "auto" = newest valid checkpoint (or fresh), or a path
  std::string device = "cpu";  // cpu | cuda | cuda:N (DDP on CUDA: cuda:LOCAL_RANK)
  bool progress = true;        // progress bar on stderr (rank 0)
  // Load path.pretrain_network_g and the --resume checkpoint even when they hold
  // NaN / Inf values (with a warning) instead of refusing them (sdb-train
  // --allow-nonfinite).
  bool allow_nonfinite = false;
  // A fresh start in a non-empty experiment folder renames it to
  // <folder>_archived_<time> (BasicSR's behaviour); false = error instead.
  bool archive_existing = true;
};

enum class TrainStatus { finished, interrupted, nonfinite };

struct TrainResult {
  TrainStatus status = TrainStatus::finished;
  int64_t start_iter = 0;  // iterations done before this run (resume)
  int64_t iter = 0;        // iterations done when run() returned
  // Mean training loss over ranks of every iteration this run executed
  // (skipped non-finite steps included, as NaN/Inf).
  std::vector<double> losses;
  double best_psnr = 0;  // -inf when never validated
  std::string experiment_dir;
  std::string last_checkpoint;  // JSON of the last checkpoint written ("" if none)
  std::string message;          // human-readable reason for interrupted / nonfinite
};

class Trainer {
 public:
  // `comm` may be null (single process); it must outlive the trainer.
  Trainer(TrainConfig cfg, TrainerOptions options, Communicator* comm = nullptr);
  ~Trainer();

  // Resolves the resume checkpoint, creates (or archives) the experiment
  // folder, writes the resolved config.yml; returns the path of the log file
  // the app should open (rank 0; "" elsewhere). Called by run() if needed.
  std::string prepare();
  TrainResult run();

  const std::string& experiment_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Signal plumbing (async-signal-safe): install_stop_handlers() routes SIGINT
// and SIGTERM to request_stop(); a second signal of either kind terminates the
// process the default way. stop_signal() is the first signal received, 0 if none.
void install_stop_handlers();
void request_stop(int signal);
int stop_signal();
void clear_stop_request();

// Exit code sdb-train uses for a result: 0 finished, 128 + signal when
// interrupted (130 SIGINT, 143 SIGTERM), 3 for a non-finite loss.
int exit_code_for(const TrainResult& result);

}  // namespace samdeblur::train
