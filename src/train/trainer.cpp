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
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/core/torch_compat.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "samdeblur/metrics/summary.h"
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

nlohmann::json json_number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

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

// Validation sums of one dataset (reduced over ranks).
struct ValSums {
  std::vector<std::string> names;  // metric names
  std::vector<double> values;      // [sum metric_0.., sum psnr_input, collapsed, count]
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
  std::unique_ptr<TbWriter> tb;
  std::ofstream metrics;
  LossScaler scaler;
  TrainingState state;

  void log_json(nlohmann::json j) {
    if (!main) return;
    metrics << j.dump() << "\n";
    metrics.flush();
  }

  void setup_model() {
    net = models::build_network(cfg.network_g);
    if (!cfg.path.pretrain_network_g.empty()) {
      const auto sd = io::load_state_dict_file(cfg.path.pretrain_network_g, cfg.path.param_key_g);
      io::load_state_dict(*net, sd, cfg.path.strict_load_g, cfg.path.pretrain_network_g);
      log::info("loaded pretrained weights " + cfg.path.pretrain_network_g);
    }
    net->to(device);
    if (cfg.train.channels_last && device.is_cuda()) {
      torch::NoGradGuard g;
      for (auto& p : net->parameters())
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    net->train();
    params = net->parameters();
    optimizer = make_optimizer(params, cfg.train.optim_g);
    schedule = std::make_unique<LrSchedule>(cfg.train.scheduler, cfg.train.optim_g.lr,
                                            cfg.train.warmup_iter);
  }

  void setup_loader() {
    TrainDatasetOptions d;
    const TrainSetOptions& t = cfg.train_set;
    d.base = t.base;
    d.gt_size = t.gt_size;
    d.use_flip = t.use_flip;
    d.use_rot = t.use_rot;
    d.use_shuffle = t.use_shuffle;
    d.batch_size_per_gpu = t.batch_size_per_gpu;
    d.num_worker_per_gpu = t.num_worker_per_gpu;
    d.dataset_enlarge_ratio = t.dataset_enlarge_ratio;
    d.mask_rotation = t.mask_rotation;
    d.prefetch = t.prefetch;
    loader = std::make_unique<TrainLoader>(d, static_cast<uint64_t>(cfg.manual_seed), comm->rank(),
                                           comm->world_size());
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
  double validate(int64_t iter) {
    if (cfg.val_datasets.empty()) return std::nan("");
    net->eval();
    double first_psnr = std::nan("");
    std::vector<config::MetricOptions> mopts = cfg.val.metrics;
    auto has = [&](const char* type) {
      for (const auto& m : mopts)
        if (m.type == type) return true;
      return false;
    };
    if (!has("calculate_psnr"))
      mopts.insert(mopts.begin(), config::MetricOptions{"psnr", "calculate_psnr"});
    if (!has("calculate_ssim")) mopts.push_back(config::MetricOptions{"ssim", "calculate_ssim"});
    std::size_t psnr_index = 0;
    for (std::size_t k = 0; k < mopts.size(); ++k)
      if (mopts[k].type == "calculate_psnr") {
        psnr_index = k;
        break;
      }
    for (const auto& ds : cfg.val_datasets) {
      const auto samples = dataset::list_samples(ds);
      std::vector<double> sums(mopts.size() + 3, 0.0);
      for (std::size_t i = static_cast<std::size_t>(comm->rank()); i < samples.size();
           i += static_cast<std::size_t>(comm->world_size())) {
        const dataset::Sample sample = dataset::load_sample(samples[i], ds);
        const torch::Tensor out = eval::infer(*net, sample, cfg.val, device);
        const cv::Mat sr = io::tensor_to_image(out);
        const cv::Mat gt = io::tensor_to_image(sample.gt);
        const cv::Mat in = io::tensor_to_image(sample.lq.slice(0, 0, 3));
        std::vector<double> values;
        for (std::size_t k = 0; k < mopts.size(); ++k) {
          const auto& m = mopts[k];
          double v;
          if (m.type == "calculate_psnr") {
            v = metrics::calculate_psnr(sr, gt, m.crop_border, m.test_y_channel);
          } else {
            metrics::Ssim3dOptions o;
            if (m.ssim3d_precision == "float32") {
              o.mode = metrics::Gaussian3d::direct;
              o.dtype = torch::kFloat32;
            }
            v = metrics::calculate_ssim(sr, gt, m.crop_border, m.test_y_channel, m.ssim3d, o);
          }
          sums[k] += v;
          values.push_back(v);
        }
        const auto& pm = mopts[psnr_index];
        const double psnr_in = metrics::calculate_psnr(in, gt, pm.crop_border, pm.test_y_channel);
        sums[mopts.size()] += psnr_in;
        sums[mopts.size() + 1] +=
            metrics::is_collapsed(psnr_in, values[psnr_index], cfg.val.mcr_threshold) ? 1 : 0;
        sums[mopts.size() + 2] += 1;
      }
      comm->all_reduce_sum(sums);
      const double n = sums.back();
      nlohmann::json j{{"type", "val"}, {"iter", iter}, {"dataset", ds.name}, {"images", n}};
      std::string text = fmt::format("validation {} @ iter {}:", ds.name, iter);
      for (std::size_t k = 0; k < mopts.size(); ++k) {
        const double mean = sums[k] / n;
        j[mopts[k].name] = json_number(mean);
        text += fmt::format(" {}={:.4f}", mopts[k].name, mean);
        if (main && tb) tb->add_scalar("metrics/" + ds.name + "/" + mopts[k].name, mean, iter);
      }
      const double mcr = sums[mopts.size() + 1] / n;
      j["psnr_input"] = json_number(sums[mopts.size()] / n);
      j["mcr"] = json_number(mcr);
      text += fmt::format(" mcr={:.4f}", mcr);
      if (main && tb) tb->add_scalar("metrics/" + ds.name + "/mcr", mcr, iter);
      if (std::isnan(first_psnr)) first_psnr = sums[psnr_index] / n;
      if (main) log::info(text);
      log_json(j);
    }
    if (main && tb) tb->flush();
    net->train();
    return first_psnr;
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
  const TrainConfig& cfg = m.cfg;
  m.device = eval::parse_device(m.opt.device);
  if (m.device.is_cuda() && m.comm->world_size() > 1)
    m.device = torch::Device(torch::kCUDA,
                             static_cast<c10::DeviceIndex>(DistEnv::from_environment().local_rank));
  const bool amp = cfg.train.amp != "none" && m.device.is_cuda();
  if (cfg.train.amp != "none" && !m.device.is_cuda())
    log::warn("train.amp = " + cfg.train.amp + " needs CUDA; training in float32 on " +
              m.device.str());

  torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed + m.comm->rank()));
  m.setup_model();
  m.setup_loader();
  if (m.main) {
    m.metrics.open(cfg.experiments_root + "/metrics.jsonl", std::ios::app);
    if (!m.metrics)
      throw FileError(cfg.experiments_root + "/metrics.jsonl", "cannot open for appending");
    if (cfg.logger.use_tb_logger)
      m.tb = std::make_unique<TbWriter>(cfg.experiments_root + "/tb_logger");
  }

  TrainResult result;
  result.experiment_dir = cfg.experiments_root;
  if (!m.resume_path.empty()) {
    m.state = m.ckpt->load(m.resume_path, *m.net, *m.optimizer);
    m.loader->restore(m.loader_state_from_json(m.state.loader));
    m.scaler.scale = m.state.extra.value("loss_scale", m.scaler.scale);
    m.scaler.good_steps = m.state.extra.value("loss_scale_good_steps", int64_t{0});
    if (m.comm->rank() >
        0)  // rank 0's generator state was saved; others reseed per (seed, rank, iter)
      torch::manual_seed(static_cast<uint64_t>(cfg.manual_seed + m.comm->rank()) * 1000003ull +
                         static_cast<uint64_t>(m.state.iter));
    log::info(fmt::format("resumed from {} at iter {} (epoch {})", m.resume_path, m.state.iter,
                          m.state.epoch));
  } else {
    m.comm->broadcast_module(*m.net);  // DDP: every rank starts from rank 0's weights
  }
  result.start_iter = m.state.iter;
  result.iter = m.state.iter;
  result.best_psnr = m.state.best_psnr;

  const int64_t total = cfg.train.total_iter;
  if (m.main)
    log::info(fmt::format(
        "training {} ({} params) on {} x{}: iter {} -> {}, batch {} per process, lr {}",
        cfg.network_g.type,
        [&] {
          int64_t n = 0;
          for (auto& p : m.params) n += p.numel();
          return n;
        }(),
        m.device.str(), m.comm->world_size(), m.state.iter, total, cfg.train_set.batch_size_per_gpu,
        cfg.train.optim_g.lr));
  std::unique_ptr<ProgressBar> bar;
  if (m.main && m.opt.progress)
    bar = std::make_unique<ProgressBar>("train", total - m.state.iter, "it");
  const auto t_start = std::chrono::steady_clock::now();

  for (int64_t iter = m.state.iter + 1; iter <= total; ++iter) {
    const double lr = m.schedule->lr(iter);
    set_lr(*m.optimizer, lr);
    TrainBatch batch = m.loader->next();
    torch::Tensor lq = batch.lq.to(m.device, /*non_blocking=*/true);
    torch::Tensor gt = batch.gt.to(m.device, true);
    if (cfg.train.channels_last && m.device.is_cuda())
      lq = lq.contiguous(torch::MemoryFormat::ChannelsLast);
    std::vector<models::SegMasks> masks;
    for (const auto& s : batch.masks) masks.push_back(m.device.is_cpu() ? s : s.to(m.device));

    m.optimizer->zero_grad();
    torch::Tensor pred;
    if (amp) compat::set_cuda_autocast(true, cfg.train.amp == "bf16" ? at::kBFloat16 : at::kHalf);
    try {
      pred = m.net->forward(lq, masks);
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
    for (const auto& p : m.params) zero_term = zero_term + p.sum();
    torch::Tensor total_loss = loss + 0.0 * zero_term;

    const double local_loss = loss.item<double>();
    const bool local_bad = !std::isfinite(local_loss);
    // One all-reduce agrees on: mean loss, any non-finite, any stop request.
    std::vector<double> flags{local_bad ? 0.0 : local_loss, local_bad ? 1.0 : 0.0,
                              stop_signal() ? 1.0 : 0.0};
    m.comm->all_reduce_sum(flags);
    const bool any_bad = flags[1] > 0, any_stop = flags[2] > 0;
    const double mean_loss =
        any_bad ? (local_bad ? local_loss : std::nan("")) : flags[0] / m.comm->world_size();
    result.losses.push_back(mean_loss);

    if (any_bad) {
      std::string names;
      for (const auto& n : batch.names) names += (names.empty() ? "" : ", ") + n;
      const std::string msg = fmt::format("non-finite loss {} at iter {} (lr {:.3e}; batch: {})",
                                          local_loss, iter, lr, names.empty() ? "?" : names);
      if (cfg.train.skip_nonfinite) {
        log::warn(msg + "; step skipped (train.skip_nonfinite)");
        m.log_json({{"type", "skip"}, {"iter", iter}, {"loss", json_number(local_loss)}});
      } else {
        log::error(msg +
                   "; stopping. The last checkpoint is untouched; resume from it with a lower "
                   "lr or set train.skip_nonfinite: true");
        m.log_json(
            {{"type", "nonfinite"}, {"iter", iter}, {"loss", json_number(local_loss)}, {"lr", lr}});
        result.status = TrainStatus::nonfinite;
        result.message = msg;
        break;
      }
    }

    bool step_ok = !any_bad;  // skipped non-finite step: no backward, no update
    if (any_bad) {
      // nothing to do
    } else if (amp && cfg.train.amp == "fp16") {
      (total_loss * m.scaler.scale).backward();
      m.comm->average_gradients(m.params);
      bool finite = true;
      for (auto& p : m.params)
        if (p.grad().defined()) finite = finite && torch::isfinite(p.grad()).all().item<bool>();
      m.scaler.update(!finite);
      if (finite) {
        for (auto& p : m.params)
          if (p.grad().defined()) p.mutable_grad().div_(m.scaler.scale);
      } else {
        step_ok = false;  // loss-scale overflow: skip, as GradScaler does
      }
    } else {
      total_loss.backward();
      m.comm->average_gradients(m.params);
    }
    if (step_ok) {
      if (cfg.train.use_grad_clip) clip_grad_norm(m.params, cfg.train.grad_clip_norm);
      m.optimizer->step();
    }
    m.state.iter = iter;
    result.iter = iter;

    if (m.main) {
      if (iter % cfg.logger.print_freq == 0 || iter == 1) {
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double it_s = (iter - result.start_iter) / std::max(secs, 1e-9);
        log::info(fmt::format("[iter {:>7}/{}] lr {:.3e} l_pix {:.4f} ({:.2f} it/s)", iter, total,
                              lr, mean_loss, it_s));
        m.log_json({{"type", "train"},
                    {"iter", iter},
                    {"epoch", m.loader->state().epoch},
                    {"l_pix", json_number(mean_loss)},
                    {"lr", lr},
                    {"it_per_s", it_s}});
        if (m.tb) {
          m.tb->add_scalar("losses/l_pix", mean_loss, iter);
          m.tb->add_scalar("lr", lr, iter);
          m.tb->flush();
        }
      }
      if (bar) bar->update(1, fmt::format("loss {:.4f} lr {:.2e}", mean_loss, lr));
    }

    const bool last = iter == total;
    if (cfg.val_freq > 0 && (iter % cfg.val_freq == 0 || iter == 1 || last)) {
      const double psnr = m.validate(iter);
      if (std::isfinite(psnr) && psnr > m.state.best_psnr) {
        m.state.best_psnr = psnr;
        m.state.best_iter = iter;
        result.best_psnr = psnr;
        if (m.main) {
          m.ckpt->save_network(*m.net, "best");
          log::info(fmt::format("new best PSNR {:.4f} at iter {}", psnr, iter));
        }
      }
    }
    if (iter % cfg.logger.save_checkpoint_freq == 0 || last || any_stop)
      result.last_checkpoint = m.save_checkpoint(iter);
    if (any_stop && !last) {
      result.status = TrainStatus::interrupted;
      result.message = fmt::format("stopped by signal {} after iter {}; resume with --resume auto",
                                   stop_signal(), iter);
      log::warn(result.message);
      break;
    }
  }
  if (bar) bar->finish();
  if (m.tb) m.tb->flush();
  m.comm->barrier();
  result.best_psnr = m.state.best_psnr;
  if (m.main && result.status == TrainStatus::finished)
    log::info(fmt::format("training done at iter {}; best PSNR {:.4f} (iter {})", result.iter,
                          m.state.best_psnr, m.state.best_iter));
  return result;
}

}  // namespace samdeblur::train
