#include "samdeblur/train/trainer.h"

#include <fmt/format.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/file_lock.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/core/torch_compat.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/eval/sample_metrics.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/models/layers.h"
#include "samdeblur/models/network.h"
#include "samdeblur/train/checkpoint.h"
#include "samdeblur/train/loss.h"
#include "samdeblur/train/scheduler.h"
#include "samdeblur/train/tb_writer.h"
#include "samdeblur/train/train_dataset.h"

namespace samdeblur::train {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- signals --
namespace {
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal handler needs a lock-free flag");

void on_stop_signal(int sig) {
  int expected = 0;
  g_stop_signal.compare_exchange_strong(expected, sig);
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second signal kills the default way
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}
void request_stop(int signal) { on_stop_signal(signal); }
int stop_signal() { return g_stop_signal.load(); }
void clear_stop_request() { g_stop_signal.store(0); }

int exit_code_for(const TrainResult& r) {
  switch (r.status) {
    case TrainStatus::finished:
      return 0;
    case TrainStatus::interrupted:
      return 128 + (stop_signal() ? stop_signal() : SIGINT);
    case TrainStatus::nonfinite:
      return 3;
  }
  return 1;
}

// ------------------------------------------------------------------ helpers --
namespace {

std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d_%H%M%S", std::localtime(&t));
  return buf;
}

using eval::json_number;

// fp16 dynamic loss scaling (torch.cuda.amp.GradScaler defaults).
struct LossScaler {
  double scale = 65536.0;
  int64_t good_steps = 0;
  static constexpr int64_t kGrowthInterval = 2000;
  void update(bool found_inf) {
    if (found_inf) {
      scale *= 0.5;
      good_steps = 0;
    } else if (++good_steps % kGrowthInterval == 0) {
      scale *= 2.0;
    }
  }
};

// What one training step agreed on over all ranks.
struct StepOutcome {
  torch::Tensor total_loss;  // loss + 0 * sum(params), for backward
  double local_loss = 0;     // this rank's loss
  double mean_loss = 0;      // mean over ranks (this rank's value when non-finite)
  bool any_bad = false;      // some rank's loss is non-finite
  bool any_stop = false;     // some rank received SIGINT / SIGTERM
};

}  // namespace

// ------------------------------------------------------------------- Trainer --
struct Trainer::Impl {
  TrainConfig cfg;
  TrainerOptions opt;
  Communicator* comm = nullptr;
  std::unique_ptr<Communicator> own_comm;
  bool prepared = false;
  bool main = true;
  std::string resume_path;
  std::string log_file;
  torch::Device device{torch::kCPU};

  models::DeblurNet net;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<LrSchedule> schedule;
  std::unique_ptr<TrainLoader> loader;
  std::unique_ptr<CheckpointManager> ckpt;
  std::unique_ptr<FileLock> folder_lock;  // robustness: one writer per experiment folder
  std::unique_ptr<TbWriter> tb;
  std::ofstream metrics;
  LossScaler scaler;
  TrainingState state;
  bool amp = false;  // autocast: train.amp on CUDA
  std::unique_ptr<ProgressBar> bar;
  std::chrono::steady_clock::time_point t_start;

  void log_json(nlohmann::json j) {
    if (!main) return;
    metrics << j.dump() << "\n";
    metrics.flush();
  }

  void setup_model() {
    net = eval::build_and_load(cfg.network_g, cfg.path, device, opt.allow_nonfinite);
    const models::ExecutionOptions execution = cfg.train.execution();
    if (!execution.is_default()) {  // train.memory_format (models/execution.h)
      models::check_execution_supported(execution, device);
      net->set_execution(execution);
      models::set_fused_backward(*net, execution.fused);
      log::info(fmt::format(
          "network trains in {}{}", execution.memory_format(),
          execution.fused && device.is_cpu() ? " with the fused NAFBlock kernels" : ""));
    }
    net->train();
    params = net->parameters();
    optimizer = make_optimizer(params, cfg.train.optim_g);
    schedule = std::make_unique<LrSchedule>(cfg.train.scheduler, cfg.train.optim_g.lr,
                                            cfg.train.warmup_iter);
  }

  void setup_loader() {
    loader = std::make_unique<TrainLoader>(cfg.train_set, static_cast<uint64_t>(cfg.manual_seed),
                                           comm->rank(), comm->world_size());
  }

  LoaderState loader_state_from_json(const nlohmann::json& j) {
    LoaderState s;
    s.epoch = j.value("epoch", int64_t{0});
    s.position = j.value("position", int64_t{0});
    s.seed = j.value("seed", uint64_t{0});
    return s;
  }

  nlohmann::json loader_state_json() {
    const LoaderState s = loader->state();
    return {{"epoch", s.epoch}, {"position", s.position}, {"seed", s.seed}};
  }

  std::string save_checkpoint(int64_t iter) {
    if (!main) return "";
    state.iter = iter;
    state.loader = loader_state_json();
    state.epoch = loader->state().epoch;
    state.extra["loss_scale"] = scaler.scale;
    state.extra["loss_scale_good_steps"] = scaler.good_steps;
    state.extra["world_size"] = comm->world_size();
    const std::string path = ckpt->save(state, *net, *optimizer);
    ckpt->save_network(*net, "latest");
    log::info(fmt::format("saved checkpoint {} (iter {})", path, iter));
    return path;
  }

  // Sharded validation: rank r evaluates images r, r + w, ...; sums reduced.
  // Per image exactly sdb-eval's path (eval::evaluate_sample). Returns the
  // first dataset's mean of the first PSNR metric (NaN without datasets).
  double validate(int64_t iter) {
    if (cfg.val_datasets.empty()) return std::nan("");
    net->eval();
    double first_psnr = std::nan("");
    const eval::MetricList metric_list(cfg.val);
    const std::vector<std::string> names = metric_list.names();
    for (const auto& ds : cfg.val_datasets) {
      const auto samples = dataset::list_samples(ds);
      eval::DatasetAccumulator acc(metric_list.size());
      for (std::size_t i = static_cast<std::size_t>(comm->rank()); i < samples.size();
           i += static_cast<std::size_t>(comm->world_size())) {
        const dataset::Sample sample = dataset::load_sample(samples[i], ds);
        const torch::Tensor out = eval::infer(*net, sample, cfg.val, device);
        acc.add(eval::evaluate_sample(metric_list, io::tensor_to_image(out), sample));
      }
      comm->all_reduce_sum(acc.sums());
      nlohmann::json j{
          {"type", "val"}, {"iter", iter}, {"dataset", ds.name}, {"images", acc.count()}};
      j.update(acc.json(names));
      std::string text = fmt::format("validation {} @ iter {}:", ds.name, iter);
      for (std::size_t k = 0; k < names.size(); ++k) {
        text += fmt::format(" {}={:.4f}", names[k], acc.mean(k));
        if (main && tb) tb->add_scalar("metrics/" + ds.name + "/" + names[k], acc.mean(k), iter);
      }
      text += fmt::format(" mcr={:.4f}", acc.mcr());
      if (main && tb) tb->add_scalar("metrics/" + ds.name + "/mcr", acc.mcr(), iter);
      if (std::isnan(first_psnr)) first_psnr = acc.mean(metric_list.psnr_index());
      if (main) log::info(text);
      log_json(j);
    }
    if (main && tb) tb->flush();
    net->train();
    return first_psnr;
  }

  // ---------------------------------------------------------- run() steps --
  // Device, seeds, model, optimizer, loader, metrics.jsonl, TensorBoard.
  void setup() {
    device = parse_device(opt.device);
    if (device.is_cuda() && comm->world_size() > 1)
      device = torch::Device(torch::kCUDA,
                             static_cast<c10::DeviceIndex>(DistEnv::from_environment().local_rank));
    amp = cfg.train.amp != "none" && device.is_cuda();
    if (cfg.train.amp != "none" && !device.is_cuda())
      log::warn("train.amp = " + cfg.train.amp + " needs CUDA; training in float32 on " +
                device.str());
    torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed + comm->rank()));
    setup_model();
    setup_loader();
    if (main) {
      metrics.open(cfg.experiments_root + "/metrics.jsonl", std::ios::app);
      if (!metrics)
        throw FileError(cfg.experiments_root + "/metrics.jsonl", "cannot open for appending");
      if (cfg.logger.use_tb_logger)
        tb = std::make_unique<TbWriter>(cfg.experiments_root + "/tb_logger");
    }
  }

  // Loads the resume checkpoint (weights, optimizer, loader, loss scale), or
  // gives every rank rank 0's initial weights.
  TrainResult resume_or_broadcast() {
    TrainResult result;
    result.experiment_dir = cfg.experiments_root;
    if (!resume_path.empty()) {
      state = ckpt->load(resume_path, *net, *optimizer, opt.allow_nonfinite);
      loader->restore(loader_state_from_json(state.loader));
      scaler.scale = state.extra.value("loss_scale", scaler.scale);
      scaler.good_steps = state.extra.value("loss_scale_good_steps", int64_t{0});
      if (comm->rank() >
          0)  // rank 0's generator state was saved; others reseed per (seed, rank, iter)
        torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed + comm->rank()) * 1000003ull +
                           static_cast<uint64_t>(state.iter));
      log::info(fmt::format("resumed from {} at iter {} (epoch {})", resume_path, state.iter,
                            state.epoch));
    } else {
      comm->broadcast_module(*net);  // DDP: every rank starts from rank 0's weights
    }
    result.start_iter = state.iter;
    result.iter = state.iter;
    result.best_psnr = state.best_psnr;
    return result;
  }

  void log_start() {
    const int64_t total = cfg.train.total_iter;
    if (main) {
      int64_t n = 0;
      for (auto& p : params) n += p.numel();
      log::info(fmt::format(
          "training {} ({} params) on {} x{}: iter {} -> {}, batch {} per process, lr {}",
          cfg.network_g.type, n, device.str(), comm->world_size(), state.iter, total,
          cfg.train_set.batch_size_per_gpu, cfg.train.optim_g.lr));
    }
    if (main && opt.progress)
      bar = std::make_unique<ProgressBar>("train", total - state.iter, "it");
    t_start = std::chrono::steady_clock::now();
  }

  // zero_grad, forward (autocast with train.amp on CUDA), PSNRLoss + 0 * sum(params);
  // one all-reduce agrees on the mean loss, any non-finite loss, any stop request.
  StepOutcome forward_and_agree(const TrainBatch& batch) {
    const torch::Tensor lq = batch.lq.to(device, /*non_blocking=*/true);
    torch::Tensor gt = batch.gt.to(device, true);
    std::vector<models::SegMasks> masks;
    for (const auto& s : batch.masks) masks.push_back(device.is_cpu() ? s : s.to(device));

    optimizer->zero_grad();
    torch::Tensor pred;
    if (amp) compat::set_cuda_autocast(true, cfg.train.amp == "bf16" ? at::kBFloat16 : at::kHalf);
    try {
      pred = net->forward(lq, masks);
    } catch (...) {
      if (amp) compat::set_cuda_autocast(false);
      throw;
    }
    if (amp) {
      at::autocast::clear_cache();
      compat::set_cuda_autocast(false);
    }
    torch::Tensor loss =
        psnr_loss(pred.to(torch::kFloat32), gt, cfg.train.loss_weight, cfg.train.loss_to_y);
    // As the official: l_total + 0 * sum(p.sum()) gives every parameter a gradient.
    torch::Tensor zero_term = torch::zeros({}, loss.options());
    for (const auto& p : params) zero_term = zero_term + p.sum();
    StepOutcome o;
    o.total_loss = loss + 0.0 * zero_term;
    o.local_loss = loss.item<double>();
    const bool local_bad = !std::isfinite(o.local_loss);
    std::vector<double> flags{local_bad ? 0.0 : o.local_loss, local_bad ? 1.0 : 0.0,
                              stop_signal() ? 1.0 : 0.0};
    comm->all_reduce_sum(flags);
    o.any_bad = flags[1] > 0;
    o.any_stop = flags[2] > 0;
    o.mean_loss =
        o.any_bad ? (local_bad ? o.local_loss : std::nan("")) : flags[0] / comm->world_size();
    return o;
  }

  // A non-finite loss on some rank: logs it; returns true (stop the run, status
  // nonfinite) unless train.skip_nonfinite, which skips the step.
  bool on_nonfinite(const StepOutcome& step, const TrainBatch& batch, int64_t iter, double lr,
                    TrainResult& result) {
    std::string names;
    for (const auto& n : batch.names) names += (names.empty() ? "" : ", ") + n;
    const std::string msg = fmt::format("non-finite loss {} at iter {} (lr {:.3e}; batch: {})",
                                        step.local_loss, iter, lr, names.empty() ? "?" : names);
    if (cfg.train.skip_nonfinite) {
      log::warn(msg + "; step skipped (train.skip_nonfinite)");
      log_json({{"type", "skip"}, {"iter", iter}, {"loss", json_number(step.local_loss)}});
      return false;
    }
    log::error(msg +
               "; stopping. The last checkpoint is untouched; resume from it with a lower "
               "lr or set train.skip_nonfinite: true");
    log_json({{"type", "nonfinite"},
              {"iter", iter},
              {"loss", json_number(step.local_loss)},
              {"lr", lr}});
    result.status = TrainStatus::nonfinite;
    result.message = msg;
    return true;
  }

  // backward, DDP gradient average, fp16 loss scaling, clipping, optimizer step.
  // A skipped non-finite step does nothing.
  void backward_and_update(const StepOutcome& step) {
    if (step.any_bad) return;
    bool step_ok = true;
    if (amp && cfg.train.amp == "fp16") {
      (step.total_loss * scaler.scale).backward();
      comm->average_gradients(params);
      bool finite = true;
      for (auto& p : params)
        if (p.grad().defined()) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
      scaler.update(!finite);
      if (finite) {
        for (auto& p : params)
          if (p.grad().defined()) p.mutable_grad().div_(scaler.scale);
      } else {
        step_ok = false;  // loss-scale overflow: skip, as GradScaler does
      }
    } else {
      step.total_loss.backward();
      comm->average_gradients(params);
    }
    if (step_ok) {
      if (cfg.train.use_grad_clip) clip_grad_norm(params, cfg.train.grad_clip_norm);
      optimizer->step();
    }
  }

  // Every logger.print_freq iterations (and at iter 1): log line, JSON line,
  // TensorBoard; the progress bar every iteration. Rank 0 only.
  void log_iteration(int64_t iter, double lr, double mean_loss, int64_t start_iter) {
    if (!main) return;
    if (iter % cfg.logger.print_freq == 0 || iter == 1) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double it_s = (iter - start_iter) / std::max(secs, 1e-9);
      log::info(fmt::format("[iter {:>7}/{}] lr {:.3e} l_pix {:.4f} ({:.2f} it/s)", iter,
                            cfg.train.total_iter, lr, mean_loss, it_s));
      log_json({{"type", "train"},
                {"iter", iter},
                {"epoch", loader->state().epoch},
                {"l_pix", json_number(mean_loss)},
                {"lr", lr},
                {"it_per_s", it_s}});
      if (tb) {
        tb->add_scalar("losses/l_pix", mean_loss, iter);
        tb->add_scalar("lr", lr, iter);
        tb->flush();
      }
    }
    if (bar) bar->update(1, fmt::format("loss {:.4f} lr {:.2e}", mean_loss, lr));
  }

  // Every val.val_freq iterations, at iter 1 and at the end; keeps the best weights.
  void maybe_validate(int64_t iter, bool last, TrainResult& result) {
    if (cfg.val_freq <= 0 || !(iter % cfg.val_freq == 0 || iter == 1 || last)) return;
    const double psnr = validate(iter);
    if (!(std::isfinite(psnr) && psnr > state.best_psnr)) return;
    state.best_psnr = psnr;
    state.best_iter = iter;
    result.best_psnr = psnr;
    if (main) {
      ckpt->save_network(*net, "best");
      log::info(fmt::format("new best PSNR {:.4f} at iter {}", psnr, iter));
    }
  }

  void on_stop(int64_t iter, TrainResult& result) {
    result.status = TrainStatus::interrupted;
    result.message = fmt::format("stopped by signal {} after iter {}; resume with --resume auto",
                                 stop_signal(), iter);
    log::warn(result.message);
  }

  void finish(TrainResult& result) {
    if (bar) bar->finish();
    if (tb) tb->flush();
    comm->barrier();
    result.best_psnr = state.best_psnr;
    if (main && result.status == TrainStatus::finished)
      log::info(fmt::format("training done at iter {}; best PSNR {:.4f} (iter {})", result.iter,
                            state.best_psnr, state.best_iter));
  }

  void maybe_archive(const std::string& dir) {
    std::error_code ec;
    if (!fs::exists(dir, ec) || fs::is_empty(dir, ec)) return;
    if (!opt.archive_existing)
      throw Error("experiment folder " + dir +
                  " exists; pass --resume auto to continue it or remove it");
    const std::string archived = dir + "_archived_" + timestamp();
    fs::rename(dir, archived, ec);
    if (ec) throw FileError(dir, "cannot archive to " + archived + ": " + ec.message());
    log::warn("experiment folder existed; moved to " + archived);
  }
};

Trainer::Trainer(TrainConfig cfg, TrainerOptions options, Communicator* comm)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->opt = std::move(options);
  if (!comm) {
    impl_->own_comm = std::make_unique<Communicator>(DistEnv{});
    comm = impl_->own_comm.get();
  }
  impl_->comm = comm;
  impl_->main = comm->is_main();
}

Trainer::~Trainer() = default;

const std::string& Trainer::experiment_dir() const { return impl_->cfg.experiments_root; }

std::string Trainer::prepare() {
  Impl& m = *impl_;
  if (m.prepared) return m.log_file;
  const std::string& dir = m.cfg.experiments_root;
  m.ckpt = std::make_unique<CheckpointManager>(dir, m.cfg.logger.keep_last, m.cfg.path.param_key_g);
  std::string spec = m.opt.resume.empty() ? m.cfg.resume_state : m.opt.resume;
  m.resume_path = m.ckpt->resolve_resume(spec);  // every rank reads the same files
  if (spec == "auto" && m.resume_path.empty())
    log::info("--resume auto: no checkpoint in " + dir + ", starting fresh");
  if (m.main) {
    // robustness: refuse a second writer before touching the folder; stale temporaries go
    m.folder_lock =
        std::make_unique<FileLock>(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);
    for (const auto& p : remove_stale_temporaries(dir))
      log::info("removed " + p + " (temporary file of an interrupted run)");
    if (m.resume_path.empty()) m.maybe_archive(dir);
    fs::create_directories(m.ckpt->models_dir());
    fs::create_directories(m.ckpt->states_dir());
    m.log_file = dir + "/train_" + m.cfg.name + "_" + timestamp() + ".log";
    YAML::Emitter out;
    out << m.cfg.resolved;
    write_file_atomic(dir + "/config.yml", std::string(out.c_str()) + "\n");
  }
  m.comm->barrier();
  m.prepared = true;
  return m.log_file;
}

TrainResult Trainer::run() {
  Impl& m = *impl_;
  prepare();
  m.setup();
  TrainResult result = m.resume_or_broadcast();
  m.log_start();
  const int64_t total = m.cfg.train.total_iter;
  for (int64_t iter = m.state.iter + 1; iter <= total; ++iter) {
    const double lr = m.schedule->lr(iter);
    set_lr(*m.optimizer, lr);
    const TrainBatch batch = m.loader->next();            // data
    const StepOutcome step = m.forward_and_agree(batch);  // step (1/2)
    result.losses.push_back(step.mean_loss);
    if (step.any_bad && m.on_nonfinite(step, batch, iter, lr, result)) break;
    m.backward_and_update(step);  // step (2/2)
    m.state.iter = iter;
    result.iter = iter;
    m.log_iteration(iter, lr, step.mean_loss, result.start_iter);  // log
    const bool last = iter == total;
    m.maybe_validate(iter, last, result);  // validate
    if (iter % m.cfg.logger.save_checkpoint_freq == 0 || last || step.any_stop)
      result.last_checkpoint = m.save_checkpoint(iter);  // checkpoint
    if (step.any_stop && !last) {                        // signals
      m.on_stop(iter, result);
      break;
    }
  }
  m.finish(result);
  return result;
}

}  // namespace samdeblur::train
