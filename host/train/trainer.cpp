#include "train/trainer.hpp"

#include "dist/communicator.hpp"
#include "dist/grad_reducer.hpp"
#include "train/policy_schedule.hpp"
#include "train/run_checks.hpp"

#include <qsdk/error.hpp>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <signal.h>
#include <unistd.h>

namespace qhost {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt_lr(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", lr);
  return buf;
}

// Runs a trick hook, naming the trick in any error it throws.
template <class Fn>
void call_trick(const std::string& name, Fn&& fn) {
  try {
    fn();
  } catch (const qsdk::Error& e) {
    throw qsdk::Error(e.category(), name + (e.place().empty() ? "" : " " + e.place()), e.message(), e.hint());
  } catch (const std::exception& e) {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, name, e.what());
  }
}

}  // namespace

torch::Tensor classification_loss(const torch::Tensor& logits, const qsdk::Batch& batch) {
  if (batch.soft_target.defined())
    return -(batch.soft_target * torch::log_softmax(logits, 1)).sum(1).mean();
  return torch::nn::functional::cross_entropy(logits, batch.target);
}

Trainer::Trainer(TrainerParts parts, TrainerSettings settings)
    : parts_(std::move(parts)), settings_(std::move(settings)) {
  if (!parts_.model) throw qsdk::Error(qsdk::ErrorCategory::runtime, "trainer", "no model");
  device_ = torch::Device(settings_.device);
  // Parameters keep their identity, so the optimizer built on them follows;
  // its state is created (or loaded by resume_from) on their device.
  move_module(*parts_.model, device_, settings_.channels_last);
  scaler_ = LossScaler(settings_.precision == Precision::fp16);
}

Trainer::~Trainer() { progress_.finish(); }

bool Trainer::distributed() const { return parts_.comm && parts_.comm->world_size() > 1; }

void Trainer::verify_replicas() {
  torch::NoGradGuard no_grad;
  const auto mine = module_state(*parts_.model);
  std::vector<torch::Tensor> theirs;
  for (const auto& [name, t] : mine) theirs.push_back(t.detach().clone());
  parts_.comm->broadcast_(theirs);  // rank 0's values
  double worst = 0.0;
  std::string where;
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].second.numel() == 0) continue;
    const double d = (mine[i].second.to(torch::kDouble) - theirs[i].to(torch::kDouble)).abs().max().item<double>();
    if (d > worst) {
      worst = d;
      where = mine[i].first;
    }
  }
  std::vector<double> total{worst};
  all_reduce(total);
  if (total[0] > 0.0)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, parts_.comm->env().str() + " step " + std::to_string(global_step_),
                      "the ranks hold different models: " +
                          (worst > 0.0 ? "max |this rank - rank 0| = " + std::to_string(worst) + " in " + where
                                       : std::string("another rank differs from rank 0")),
                      "keep [distributed] broadcast_buffers = true, and make forward-updated plugin state use "
                      "qsdk::collectives()");
  spdlog::debug("step {}: all {} ranks hold the same {} tensors", global_step_, parts_.comm->world_size(), mine.size());
}

void Trainer::all_reduce(std::vector<double>& values) {
  if (!distributed() || values.empty()) return;
  auto t = torch::tensor(values, torch::kDouble);
  parts_.comm->all_reduce_sum_(t);
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
}

CheckpointData Trainer::snapshot() const {
  CheckpointData d;
  d.meta.epoch = epoch_;
  d.meta.step = global_step_;
  d.meta.best_top1 = best_top1_;
  d.meta.resolved_toml = settings_.resolved_toml;
  d.meta.optimizer_type = parts_.optimizer ? parts_.optimizer->type() : "";
  auto rng = at::detail::getDefaultCPUGenerator().get_state();
  d.meta.torch_rng_state.assign(rng.data_ptr<uint8_t>(), rng.data_ptr<uint8_t>() + rng.numel());
  // The data loader draws from (seed, epoch, index), so it has no state to keep.
  d.meta.rng_text = "loader: stateless (seed, epoch, sample index)";
  d.model = module_state(*parts_.model);
  if (parts_.optimizer) d.optimizer = parts_.optimizer->state();
  d.metrics_jsonl = metrics_ ? metrics_->history() : metrics_seed_;
  return d;
}

void Trainer::save(const std::string& path) const { write_checkpoint(path, snapshot()); }

void Trainer::resume_from(const std::string& path, bool allow_nonfinite) {
  // (schedule) Quantizers changed by [[schedule]] before the checkpoint was written;
  // first, so the model the entries are checked against has their shapes.
  if (parts_.schedule) parts_.schedule->catch_up_quantizers(read_checkpoint_meta(path).epoch, parts_.optimizer.get());
  CheckpointReadOptions ro;
  ro.model = parts_.model.get();  // entries checked against the model before any data is read
  ro.read_optimizer = parts_.optimizer != nullptr;
  ro.allow_nonfinite = allow_nonfinite;
  auto data = read_checkpoint(path, ro);
  load_module_state(*parts_.model, data.model, path);
  if (parts_.optimizer) {
    if (!data.meta.optimizer_type.empty() && data.meta.optimizer_type != parts_.optimizer->type())
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, path,
                        "was written with optimizer '" + data.meta.optimizer_type + "', this run uses '" +
                            parts_.optimizer->type() + "'",
                        "resume with the same [optimizer] type");
    // Without its state the optimizer would silently restart momentum / Adam moments.
    const bool keeps_state = parts_.optimizer->keeps_state();
    if (data.optimizer.empty() && data.meta.step > 0 && keeps_state && !settings_.reset_optimizer)
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, path + ":/optimizer",
                        "holds no optimizer state; resuming would restart the " + parts_.optimizer->type() +
                            " momentum from zero",
                        "pass --reset-optimizer to resume with a fresh optimizer state knowingly");
    if (data.optimizer.empty() && data.meta.step > 0 && keeps_state)
      spdlog::warn("{}: no optimizer state; --reset-optimizer: starting it from zero", path);
    parts_.optimizer->load_state(data.optimizer, path);
  }
  if (!data.meta.torch_rng_state.empty()) {
    auto state = torch::empty({static_cast<int64_t>(data.meta.torch_rng_state.size())}, torch::kUInt8);
    std::memcpy(state.data_ptr(), data.meta.torch_rng_state.data(), data.meta.torch_rng_state.size());
    try {
      auto gen = at::detail::getDefaultCPUGenerator();  // a handle sharing the global generator
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    } catch (const std::exception& e) {
      throw qsdk::Error(qsdk::ErrorCategory::checkpoint, path + ":/meta/torch_rng_state",
                        std::string("cannot restore the random generator: ") + e.what(),
                        "the checkpoint was written by another LibTorch version");
    }
  }
  epoch_ = data.meta.epoch;
  global_step_ = data.meta.step;
  best_top1_ = data.meta.best_top1;
  // best.h5 is written before last.h5 (and, with save_every > 1, in epochs that
  // write no last.h5): when it is newer, its top-1 is the one to beat.
  if (settings_.folder && std::filesystem::exists(settings_.folder->best_checkpoint())) {
    const double on_disk = read_checkpoint_meta(settings_.folder->best_checkpoint()).best_top1;
    if (on_disk > best_top1_) {
      spdlog::info("{} holds top-1 {:.2f}, better than the {:.2f} recorded in {}: it is the best to beat",
                   settings_.folder->best_checkpoint(), on_disk, best_top1_, path);
      best_top1_ = on_disk;
    }
  }
  metrics_seed_ = data.metrics_jsonl;
  spdlog::info("resumed from {}: {} epochs and {} steps done, best top-1 {:.2f}", path, epoch_, global_step_,
               best_top1_);
}

EvalResult Trainer::evaluate(int64_t max_batches, std::vector<torch::Tensor>* logits_out) {
  EvalResult r;
  if (!parts_.eval_loader) return r;
  const torch::Device device = device_;
  parts_.model->eval();
  torch::NoGradGuard no_grad;
  // Sums stay on the device and are read once at the end (no synchronisation per batch).
  const auto on_device = torch::TensorOptions().device(device);
  torch::Tensor loss_sum = torch::zeros({}, on_device.dtype(torch::kDouble));
  torch::Tensor c1_t = torch::zeros({}, on_device.dtype(torch::kLong)), c5_t = torch::zeros({}, on_device.dtype(torch::kLong));
  int64_t n = 0, batches = 0;
  parts_.eval_loader->start_epoch(0);
  const int64_t total = parts_.eval_loader->batches_per_epoch();
  const auto t0 = Clock::now();
  while (auto batch = parts_.eval_loader->next()) {
    if (max_batches > 0 && batches >= max_batches) break;
    auto input = batch_to_device(batch->input, device, settings_.channels_last);
    auto target = batch_to_device(batch->target, device);
    torch::Tensor logits;
    {
      AutocastScope autocast(device, settings_.precision);
      logits = parts_.model->forward(input);
    }
    if (logits.scalar_type() != torch::kFloat) logits = logits.to(torch::kFloat);
    if (logits_out) logits_out->push_back(logits.detach().to(torch::kCPU).contiguous());
    const int64_t bs = target.size(0);
    loss_sum.add_(torch::nn::functional::cross_entropy(logits, target).to(torch::kDouble) * static_cast<double>(bs));
    c1_t.add_(topk_correct_count(logits, target, 1));
    c5_t.add_(topk_correct_count(logits, target, 5));
    n += bs;
    ++batches;
    progress_.update("eval " + std::to_string(batches) + "/" +
                     std::to_string(max_batches > 0 ? std::min(max_batches, total) : total) + "  " +
                     std::to_string(static_cast<int64_t>(static_cast<double>(n) / seconds_since(t0))) + " img/s");
  }
  progress_.finish();
  const auto sums = read_scalars({loss_sum, c1_t, c5_t});
  Meter loss;
  if (n > 0) loss.add(sums[0] / static_cast<double>(n), n);
  int64_t c1 = static_cast<int64_t>(sums[1]), c5 = static_cast<int64_t>(sums[2]);
  if (distributed()) {  // every rank evaluated its own shard: sum them
    std::vector<double> all{loss.mean() * static_cast<double>(loss.count()), static_cast<double>(c1),
                            static_cast<double>(c5), static_cast<double>(n)};
    all_reduce(all);
    c1 = static_cast<int64_t>(all[1]);
    c5 = static_cast<int64_t>(all[2]);
    n = static_cast<int64_t>(all[3]);
    loss = Meter();
    if (n > 0) loss.add(all[0] / all[3], n);
  }
  r.samples = n;
  r.loss = loss.mean();
  r.top1 = n > 0 ? 100.0 * static_cast<double>(c1) / static_cast<double>(n) : 0.0;
  r.top5 = n > 0 ? 100.0 * static_cast<double>(c5) / static_cast<double>(n) : 0.0;
  return r;
}

void Trainer::train_epoch(int64_t epoch, int64_t iters) {
  const torch::Device device = device_;
  auto& model = *parts_.model;
  auto& opt = *parts_.optimizer;
  model.train();
  for (size_t i = 0; i < parts_.tricks.size(); ++i)
    call_trick(parts_.trick_names[i], [&] { parts_.tricks[i]->on_epoch_begin(epoch); });
  parts_.train_loader->start_epoch(epoch);
  // Loss, top-1/top-5 counts and a non-finite flag accumulate on the device and
  // are read once per log interval and at the end of the epoch: a step has no
  // host synchronisation (docs/training.md#devices-and-precision).
  const auto on_device = torch::TensorOptions().device(device);
  auto zero = [&](torch::ScalarType t) { return torch::zeros({}, on_device.dtype(t)); };
  torch::Tensor ep_loss = zero(torch::kDouble), ep_c1 = zero(torch::kLong), ep_c5 = zero(torch::kLong);
  torch::Tensor log_loss = zero(torch::kDouble), log_c1 = zero(torch::kLong), bad = zero(torch::kBool);
  std::vector<torch::Tensor> params;
  if (scaler_.enabled())
    for (const auto& g : opt.groups()) params.push_back(g.param);
  reset_peak_device_memory(device);
  const auto t0 = Clock::now();
  auto t_log = t0;
  int64_t samples = 0, log_samples = 0, steps_done = 0, counted = 0, log_counted = 0, skipped = 0;
  int64_t log_first_iter = 0;
  double wait_s = 0.0, log_wait_s = 0.0;
  double shown_loss = std::nan(""), shown_top1 = std::nan("");  // the last values read, for the live line
  // Throws when a step since the last read had a non-finite loss.
  auto check_finite = [&](bool nonfinite, int64_t last_iter) {
    if (!nonfinite) return;
    throw qsdk::Error(qsdk::ErrorCategory::runtime,
                      "epoch " + std::to_string(epoch) + " steps " + std::to_string(log_first_iter) + "-" +
                          std::to_string(last_iter),
                      "the training loss became non-finite (nan or inf)", "lower [optimizer] lr or add a warm-up");
  };
  for (int64_t iter = 0; iter < iters; ++iter) {
    const auto t_fetch = Clock::now();
    auto next = parts_.train_loader->next();
    const double waited = seconds_since(t_fetch);
    wait_s += waited;
    log_wait_s += waited;
    if (!next) break;
    qsdk::Batch batch = std::move(*next);
    batch.input = batch_to_device(batch.input, device, settings_.channels_last);
    batch.target = batch_to_device(batch.target, device);
    const double lr = parts_.scheduler ? parts_.scheduler->lr(epoch, iter) : opt.groups().front().lr;
    opt.set_lr(lr);
    qsdk::StepInfo info;
    info.epoch = epoch;
    info.iter = iter;
    info.global_step = global_step_;
    info.lr = lr;
    torch::Tensor logits;
    {
      // (mixed precision) Forward passes (a kd teacher's too) under autocast;
      // quantizers compute in fp32 inside it (quant_layers.cpp); the loss and
      // backward run outside, as with torch.autocast.
      AutocastScope autocast(device, settings_.precision);
      for (size_t i = 0; i < parts_.tricks.size(); ++i)
        call_trick(parts_.trick_names[i], [&] { parts_.tricks[i]->transform_batch(batch, info); });
      logits = model.forward(batch.input);
    }
    if (logits.scalar_type() != torch::kFloat) logits = logits.to(torch::kFloat);
    auto loss = classification_loss(logits, batch);
    for (size_t i = 0; i < parts_.tricks.size(); ++i)
      call_trick(parts_.trick_names[i], [&] { loss = parts_.tricks[i]->transform_loss(loss, logits, batch, info); });
    if (settings_.kill_at_step >= 0 && global_step_ == settings_.kill_at_step) {
      spdlog::warn("sending signal {} to this process at step {} (QTOOL_TEST_KILL_AT_STEP)", settings_.kill_signal,
                   global_step_);
      ::kill(::getpid(), settings_.kill_signal);
    }
    opt.zero_grad();
    if (reducer_) reducer_->prepare();
    scaler_.scale_loss(loss).backward();
    if (reducer_) {
      reducer_->finish();  // gradients averaged over the ranks
      comm_seconds_ += reducer_->last_wait_seconds();
    }
    // fp16: an overflow skips the step and lowers the scale (GradScaler's rule).
    const bool finite_grads = scaler_.unscale_and_check(params);
    if (finite_grads) opt.step();
    scaler_.update(!finite_grads);
    if (!finite_grads) ++skipped;
    ++global_step_;
    if (distributed()) {
      // Forward-updated state (BN running statistics, quantizer counters and
      // refits) follows rank 0, so every rank holds the same model.
      if (settings_.broadcast_buffers && !state_.empty()) parts_.comm->broadcast_(state_);
      parts_.comm->set_progress(global_step_);
      if (settings_.verify_every > 0 && global_step_ % settings_.verify_every == 0) verify_replicas();
    }
    for (size_t i = 0; i < parts_.tricks.size(); ++i)
      call_trick(parts_.trick_names[i], [&] { parts_.tricks[i]->on_step_end(info); });

    const int64_t bs = batch.target.size(0);
    if (finite_grads) {  // a skipped fp16 step's overflowing loss is not a training loss
      torch::NoGradGuard no_grad;
      const auto l = loss.detach().to(torch::kDouble);
      bad.logical_or_(l.isfinite().logical_not());
      const auto weighted = l * static_cast<double>(bs);
      ep_loss.add_(weighted);
      log_loss.add_(weighted);
      const auto c1 = topk_correct_count(logits.detach(), batch.target, 1);
      ep_c1.add_(c1);
      log_c1.add_(c1);
      ep_c5.add_(topk_correct_count(logits.detach(), batch.target, 5));
      counted += bs;
      log_counted += bs;
    }
    samples += bs;
    log_samples += bs;
    ++steps_done;

    const bool log_now = settings_.log_every > 0 && global_step_ % settings_.log_every == 0;
    std::optional<int64_t> peak;
    if (log_now) {
      const auto v = read_scalars({log_loss, log_c1, bad});
      check_finite(v[2] != 0.0, iter);
      shown_loss = log_counted > 0 ? v[0] / static_cast<double>(log_counted) : std::nan("");
      shown_top1 = log_counted > 0 ? 100.0 * v[1] / static_cast<double>(log_counted) : std::nan("");
      peak = peak_device_memory(device);
    }
    const double elapsed = seconds_since(t0);
    const double per_step = elapsed / static_cast<double>(iter + 1);
    const double remaining =
        per_step * static_cast<double>((iters - iter - 1) + (settings_.epochs - epoch - 1) * iters);
    char line[320];
    std::snprintf(line, sizeof(line),
                  "epoch %lld/%lld  step %lld/%lld  loss %.4f  top-1 %.2f  lr %s  %.0f img/s  data wait %.0f%%  "
                  "mem %s  ETA %s",
                  static_cast<long long>(epoch + 1), static_cast<long long>(settings_.epochs),
                  static_cast<long long>(iter + 1), static_cast<long long>(iters), shown_loss, shown_top1,
                  fmt_lr(lr).c_str(), static_cast<double>(samples) / elapsed, 100.0 * wait_s / elapsed,
                  format_peak_memory(log_now ? peak : peak_device_memory(device)).c_str(),
                  format_duration(remaining).c_str());
    progress_.update(line);
    if (log_now) {
      const double dt = seconds_since(t_log);
      if (!progress_.live()) spdlog::info("{}", line);
      if (metrics_)
        metrics_->write(JsonRecord()
                            .str("kind", "step")
                            .integer("epoch", epoch)
                            .integer("iter", iter)
                            .integer("step", global_step_)
                            .num("lr", lr)
                            .num("loss", shown_loss)
                            .num("top1", shown_top1)
                            .num("images_per_s", dt > 0 ? static_cast<double>(log_samples) / dt : 0.0)
                            .num("data_wait_frac", dt > 0 ? log_wait_s / dt : 0.0)
                            .num("peak_mem_mb", peak ? static_cast<double>(*peak) / (1 << 20) : std::nan("")));
      log_loss.zero_();
      log_c1.zero_();
      log_samples = 0;
      log_counted = 0;
      log_wait_s = 0.0;
      log_first_iter = iter + 1;
      t_log = Clock::now();
    }
  }
  progress_.finish();
  const double elapsed = seconds_since(t0);
  const int64_t steps = std::max<int64_t>(1, steps_done);
  const auto ev = read_scalars({ep_loss, ep_c1, ep_c5, bad});
  check_finite(ev[3] != 0.0, steps_done - 1);
  Meter loss_m, top1_m, top5_m;
  if (counted > 0) {
    loss_m.add(ev[0] / static_cast<double>(counted), counted);
    top1_m.add(100.0 * ev[1] / static_cast<double>(counted), counted);
    top5_m.add(100.0 * ev[2] / static_cast<double>(counted), counted);
  }
  if (distributed()) {  // epoch metrics over all ranks' samples
    std::vector<double> sums{loss_m.mean() * static_cast<double>(loss_m.count()),
                             top1_m.mean() * static_cast<double>(top1_m.count()),
                             top5_m.mean() * static_cast<double>(top5_m.count()), static_cast<double>(counted)};
    all_reduce(sums);
    counted = static_cast<int64_t>(sums[3]);
    loss_m = Meter();
    top1_m = Meter();
    top5_m = Meter();
    if (counted > 0) {
      loss_m.add(sums[0] / sums[3], counted);
      top1_m.add(sums[1] / sums[3], counted);
      top5_m.add(sums[2] / sums[3], counted);
    }
    std::vector<double> total{static_cast<double>(samples)};
    all_reduce(total);
    samples = static_cast<int64_t>(total[0]);
  }
  const auto peak = peak_device_memory(device);
  spdlog::info("epoch {}/{} train: loss {:.4f} top-1 {:.2f} top-5 {:.2f} lr {} ({:.0f} img/s, data wait {:.0f}%, "
               "peak memory {}, {}){}{}",
               epoch + 1, settings_.epochs, loss_m.mean(), top1_m.mean(), top5_m.mean(), fmt_lr(opt.current_lr()),
               static_cast<double>(samples) / elapsed, 100.0 * wait_s / elapsed, format_peak_memory(peak),
               format_duration(elapsed),
               distributed() ? " all-reduce wait " + fmt_lr(1000.0 * comm_seconds_ / static_cast<double>(steps)) +
                                   " ms/step"
                             : std::string(),
               scaler_.enabled() ? " fp16 loss scale " + fmt_lr(scaler_.scale()) + ", " + std::to_string(skipped) +
                                       " steps skipped for overflow"
                                 : std::string());
  if (metrics_) {
    JsonRecord rec;
    rec.str("kind", "train_epoch")
        .integer("epoch", epoch)
        .integer("step", global_step_)
        .integer("steps", steps_done)
        .integer("epoch_batches", parts_.train_loader->batches_per_epoch())
        .num("lr", opt.current_lr())
        .num("loss", loss_m.mean())
        .num("top1", top1_m.mean())
        .num("top5", top5_m.mean())
        .num("images_per_s", static_cast<double>(samples) / elapsed)
        .num("allreduce_wait_ms_per_step", 1000.0 * comm_seconds_ / static_cast<double>(steps))
        .num("data_wait_frac", elapsed > 0 ? wait_s / elapsed : 0.0)
        .num("peak_mem_mb", peak ? static_cast<double>(*peak) / (1 << 20) : std::nan(""))
        .num("seconds", elapsed);
    if (scaler_.enabled()) rec.num("loss_scale", scaler_.scale()).integer("skipped_steps", skipped);
    metrics_->write(rec);
  }
  comm_seconds_ = 0.0;
}

void Trainer::setup_data_parallel(bool announce) {
  // Same starting point everywhere (also after --resume or a quantizer rebuild), then averaged gradients.
  reducer_.reset();
  state_.clear();
  std::vector<torch::Tensor> all;
  for (auto& p : parts_.model->parameters()) {
    all.push_back(p);
    if (!p.requires_grad()) state_.push_back(p);
  }
  for (auto& b : parts_.model->buffers()) {
    all.push_back(b);
    state_.push_back(b);
  }
  parts_.comm->broadcast_(all);
  reducer_ = std::make_unique<GradReducer>(parts_.model->parameters(), *parts_.comm, settings_.bucket_bytes,
                                           settings_.first_bucket_bytes);
  if (!announce) return;
  const int64_t b = parts_.train_loader->options().batch_size, w = parts_.comm->world_size();
  // What one step's gradient all-reduce costs when nothing overlaps it (median of 5).
  auto probe = torch::zeros({std::max<int64_t>(1, reducer_->bytes() / 4)}, torch::kFloat);
  std::vector<double> times;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    parts_.comm->all_reduce_sum_(probe);
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  spdlog::info("data-parallel: {} ranks x batch {} = global batch {}; {}; a blocking all-reduce of them takes {} ms", w,
               b, w * b, reducer_->describe(), fmt_lr(1000.0 * times[2]));
}

std::optional<EvalResult> Trainer::fit() {
  if (!parts_.train_loader || !parts_.optimizer)
    throw qsdk::Error(qsdk::ErrorCategory::runtime, "trainer", "fit() needs a training loader and an optimizer");
  if (settings_.folder) {
    metrics_ = std::make_unique<MetricsLog>(settings_.folder->metrics(), false, metrics_seed_);
  }
  const int64_t epochs = settings_.smoke ? std::min<int64_t>(settings_.epochs, epoch_ + 1) : settings_.epochs;
  int64_t iters = parts_.train_loader->batches_per_epoch();
  if (settings_.max_steps_per_epoch > 0) iters = std::min(iters, settings_.max_steps_per_epoch);
  if (settings_.smoke) iters = std::min<int64_t>(iters, 2);
  const int64_t eval_batches = settings_.smoke ? 2 : settings_.max_eval_batches;
  if (iters <= 0)
    throw qsdk::Error(qsdk::ErrorCategory::data, "[data]", "the training set yields no batch",
                      "lower [data] batch_size or set drop_last = false");
  if (epoch_ >= epochs) spdlog::info("nothing to do: {} of {} epochs already done", epoch_, epochs);
  if (distributed()) setup_data_parallel(/*announce=*/true);
  std::optional<EvalResult> last;
  while (epoch_ < epochs) {
    const int64_t epoch = epoch_;
    if (parts_.schedule) {  // (sweep) [[schedule]] changes due at this epoch boundary
      bool rebuilt = false;
      for (const auto& change : parts_.schedule->on_epoch_begin(epoch, *parts_.optimizer)) {
        rebuilt = rebuilt || change.rfind("quantizers:", 0) == 0;
        if (metrics_)
          metrics_->write(JsonRecord().str("kind", "schedule").integer("epoch", epoch).str("change", change));
      }
      // New quantizer tensors: hook and track them instead of the replaced ones.
      if (rebuilt && distributed()) setup_data_parallel(/*announce=*/false);
    }
    train_epoch(epoch, iters);
    // A diverged step must not reach last.h5 / best.h5 (every rank checks: they hold the same model).
    if (auto bad = first_nonfinite(*parts_.model))
      throw qsdk::Error(qsdk::ErrorCategory::runtime, "epoch " + std::to_string(epoch + 1),
                        "'" + *bad + "' holds NaN or infinity after training; the run stops without saving, so "
                        "last.h5 and best.h5 keep the last finite model",
                        "lower [optimizer] lr or add a warm-up, then --resume from the last checkpoint");
    epoch_ = epoch + 1;
    const bool final = epoch_ == epochs;
    bool improved = false;
    if (parts_.eval_loader && (final || settings_.eval_every <= 0 || epoch_ % settings_.eval_every == 0)) {
      const auto t0 = Clock::now();
      last = evaluate(eval_batches);
      // Evaluation forwards may update state (quantizer counters) on uneven shards.
      if (distributed() && settings_.broadcast_buffers && !state_.empty()) parts_.comm->broadcast_(state_);
      // The first evaluation always writes best.h5 (even at 0 %), later ones when they beat it.
      improved = last->top1 > best_top1_ ||
                 (settings_.folder && !std::filesystem::exists(settings_.folder->best_checkpoint()));
      if (last->top1 > best_top1_) best_top1_ = last->top1;
      spdlog::info("epoch {}/{} eval: loss {:.4f} top-1 {:.2f} top-5 {:.2f} (best {:.2f}, {} samples, {})", epoch_,
                   epochs, last->loss, last->top1, last->top5, best_top1_, last->samples,
                   format_duration(seconds_since(t0)));
      if (metrics_)
        metrics_->write(JsonRecord()
                            .str("kind", "eval")
                            .integer("epoch", epoch)
                            .integer("step", global_step_)
                            .num("loss", last->loss)
                            .num("top1", last->top1)
                            .num("top5", last->top5)
                            .num("best_top1", best_top1_)
                            .integer("samples", last->samples));
    }
    if (settings_.folder) {
      // best.h5 first, then last.h5 recording its top-1: a kill in between leaves a
      // best.h5 newer than last.h5, which resume_from() takes into account.
      const bool save_last = final || settings_.save_every <= 0 || epoch_ % settings_.save_every == 0;
      if (improved) save(settings_.folder->best_checkpoint());
      if (improved && save_last && settings_.kill_between_saves_epoch == epoch_) {
        spdlog::warn("killing this process between best.h5 and last.h5 (QTOOL_TEST_KILL_BETWEEN_SAVES)");
        ::kill(::getpid(), SIGKILL);
      }
      if (save_last) save(settings_.folder->last_checkpoint());
    }
    if (settings_.stop_after_epochs > 0 && epoch_ >= settings_.stop_after_epochs && epoch_ < epochs) {
      spdlog::warn("stopping after {} epochs (QTOOL_TEST_STOP_AFTER_EPOCHS)", epoch_);
      break;
    }
  }
  return last;
}

}  // namespace qhost
