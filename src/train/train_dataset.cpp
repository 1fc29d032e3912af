// TrainLoader: deterministic, multi-threaded training batches (see
// train_dataset.h). Sampling mirrors basicsr/data/data_sampler.py
// (EnlargedSampler) and create_dataloader(drop_last=True).
#include "samdeblur/train/train_dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "samdeblur/core/error.h"

namespace samdeblur::train {

void TrainDatasetOptions::validate() const {
  const std::string prefix = "datasets." + (base.key.empty() ? std::string("train") : base.key);
  auto fail = [&prefix](const std::string& key, const std::string& what) {
    return ConfigError(fmt::format("{}.{}: {}", prefix, key, what));
  };
  const auto& types = dataset::dataset_types();
  if (std::find(types.begin(), types.end(), base.type) == types.end())
    throw fail("type",
               fmt::format("unknown dataset '{}'; valid: {}", base.type, fmt::join(types, ", ")));
  if (gt_size < 1) throw fail("gt_size", fmt::format("must be >= 1, got {}", gt_size));
  if (batch_size_per_gpu < 1)
    throw fail("batch_size_per_gpu", fmt::format("must be >= 1, got {}", batch_size_per_gpu));
  if (num_worker_per_gpu < 0)
    throw fail("num_worker_per_gpu", fmt::format("must be >= 0, got {}", num_worker_per_gpu));
  if (dataset_enlarge_ratio < 1)
    throw fail("dataset_enlarge_ratio", fmt::format("must be >= 1, got {}", dataset_enlarge_ratio));
  if (prefetch < 1) throw fail("prefetch", fmt::format("must be >= 1, got {}", prefetch));
  if (mask_rotation != "correct" && mask_rotation != "official")
    throw fail("mask_rotation",
               fmt::format("must be 'correct' or 'official', got '{}'", mask_rotation));
}

struct TrainLoader::Impl {
  TrainDatasetOptions opt;
  uint64_t seed = 0;
  int64_t rank = 0, world = 1;
  std::vector<dataset::SamplePaths> samples;
  int64_t per_rank = 0;  // EnlargedSampler.num_samples
  int64_t batches = 0;   // per epoch (drop_last)

  mutable std::mutex cache_mu;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> cache;

  struct Result {
    TrainBatch batch;
    std::exception_ptr error;
  };
  std::mutex mu;
  std::condition_variable cv;
  int64_t consumer = 0;  // sequence number of the next batch next() returns
  int64_t next_job = 0;  // next sequence number a worker will build
  bool stop = false;
  std::map<int64_t, Result> ready;
  std::vector<std::thread> threads;

  std::shared_ptr<const std::vector<int64_t>> indices(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(epoch);
    if (it != cache.end()) return it->second;
    auto v = std::make_shared<const std::vector<int64_t>>(
        epoch_indices(static_cast<int64_t>(samples.size()), epoch, opt.dataset_enlarge_ratio, rank,
                      world, opt.use_shuffle));
    cache.emplace(epoch, v);
    while (cache.size() > 4) cache.erase(cache.begin());
    return v;
  }

  TrainBatch build(int64_t epoch, int64_t position) const {
    if (epoch < 0 || position < 0 || position >= batches)
      throw Error(fmt::format("TrainLoader: no batch {} in epoch {} ({} batches per epoch)",
                              position, epoch, batches));
    const auto idx = indices(epoch);
    const int64_t b = opt.batch_size_per_gpu;
    TrainBatch batch;
    batch.epoch = epoch;
    batch.position = position;
    std::vector<torch::Tensor> lqs, gts;
    for (int64_t k = position * b; k < (position + 1) * b; ++k) {
      const int64_t index = (*idx)[k];
      const int64_t slot = rank + k * world;  // position in the all-ranks list
      std::mt19937_64 rng(sample_seed(seed, epoch, slot));
      const RawSample raw = load_raw_sample(samples[index], opt.base);
      // robustness: the official loader fails on an image smaller than gt_size; so do we
      if (raw.gt.rows < opt.gt_size || raw.gt.cols < opt.gt_size)
        throw FileError(samples[index].gt,
                        fmt::format("image is {}x{} (HxW), smaller than datasets.{}.gt_size = {}",
                                    raw.gt.rows, raw.gt.cols, opt.base.key, opt.gt_size));
      const cv::Size padded = padded_size(raw.gt.size(), opt.gt_size);
      const AugmentParams params = draw_augment_params(padded.height, padded.width, opt, rng);
      TrainSample s = transform_sample(raw, params, opt);
      lqs.push_back(std::move(s.lq));
      gts.push_back(std::move(s.gt));
      if (s.masks) batch.masks.push_back(std::move(*s.masks));
      batch.names.push_back(std::move(s.name));
      batch.indices.push_back(index);
    }
    batch.lq = torch::stack(lqs);
    batch.gt = torch::stack(gts);
    return batch;
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return stop || next_job < consumer + opt.prefetch; });
      if (stop) return;
      const int64_t s = next_job++;
      lock.unlock();
      Result r;
      try {
        r.batch = build(s / batches, s % batches);
      } catch (...) {
        r.error = std::current_exception();
      }
      lock.lock();
      ready.emplace(s, std::move(r));
      cv.notify_all();
    }
  }

  void start() {  // with mu held
    const int64_t n = std::max<int64_t>(1, opt.num_worker_per_gpu);
    for (int64_t i = 0; i < n; ++i) threads.emplace_back([this] { worker(); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    std::lock_guard<std::mutex> lock(mu);
    stop = false;
    ready.clear();
  }
};

TrainLoader::TrainLoader(TrainDatasetOptions options, uint64_t seed, int64_t rank,
                         int64_t world_size)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw Error(fmt::format("TrainLoader: rank {} is not in [0, world_size {})", rank, world_size));
  auto& d = *impl_;
  d.opt = std::move(options);
  d.seed = seed;
  d.rank = rank;
  d.world = world_size;
  d.samples = dataset::list_samples(d.opt.base);
  const int64_t n = static_cast<int64_t>(d.samples.size());
  d.per_rank = (n * d.opt.dataset_enlarge_ratio + world_size - 1) / world_size;
  d.batches = d.per_rank / d.opt.batch_size_per_gpu;
  if (d.batches == 0)
    throw Error(fmt::format(
        "dataset '{}': {} images x dataset_enlarge_ratio {} over {} rank(s) give {} samples per "
        "rank, fewer than batch_size_per_gpu {} (drop_last would leave no batch)",
        d.opt.base.name, n, d.opt.dataset_enlarge_ratio, world_size, d.per_rank,
        d.opt.batch_size_per_gpu));
}

TrainLoader::~TrainLoader() { impl_->shutdown(); }

TrainBatch TrainLoader::next() {
  auto& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  if (d.threads.empty()) d.start();
  const int64_t s = d.consumer;
  d.cv.wait(lock, [&] { return d.ready.count(s) > 0; });
  auto it = d.ready.find(s);
  if (it->second.error) std::rethrow_exception(it->second.error);  // kept: next() fails again
  TrainBatch batch = std::move(it->second.batch);
  d.ready.erase(it);
  ++d.consumer;
  lock.unlock();
  d.cv.notify_all();
  return batch;
}

LoaderState TrainLoader::state() const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mu);
  return {d.consumer / d.batches, d.consumer % d.batches, d.seed};
}

void TrainLoader::restore(const LoaderState& state) {
  auto& d = *impl_;
  if (state.seed != d.seed)
    throw Error(fmt::format("TrainLoader::restore: state has seed {} but the loader seed {}",
                            state.seed, d.seed));
  if (state.epoch < 0 || state.position < 0 || state.position >= d.batches)
    throw Error(
        fmt::format("TrainLoader::restore: invalid position {} of epoch {} ({} batches "
                    "per epoch)",
                    state.position, state.epoch, d.batches));
  d.shutdown();
  std::lock_guard<std::mutex> lock(d.mu);
  d.consumer = d.next_job = state.epoch * d.batches + state.position;
}

int64_t TrainLoader::size() const { return impl_->batches; }
int64_t TrainLoader::dataset_size() const { return static_cast<int64_t>(impl_->samples.size()); }
const std::vector<dataset::SamplePaths>& TrainLoader::samples() const { return impl_->samples; }
TrainBatch TrainLoader::make_batch(int64_t epoch, int64_t position) const {
  return impl_->build(epoch, position);
}

}  // namespace samdeblur::train
