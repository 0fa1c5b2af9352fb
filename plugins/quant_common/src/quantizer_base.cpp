// Shared quantizer state and helpers (docs/methods.md#the-quantizer-object).
#include <quant_common/quantizer_base.hpp>

#include <qsdk/distributed.hpp>

#include <torch/torch.h>

namespace qplug_quant_common {

QuantizerBase::QuantizerBase(const CommonOptions& options, const qsdk::QuantizerContext& ctx)
    : common_(options), setup_(make_setup(options, ctx)) {
  iteration_ = register_buffer("iteration", torch::zeros({1}));
  level_num_ = register_buffer("level_num", torch::full({1}, static_cast<float>(setup_.levels)));
  // The values just written: not even the first forward reads them back.
  iteration_host_.updated(iteration_, 0.0);
  level_num_host_.updated(level_num_, static_cast<double>(static_cast<float>(setup_.levels)));
  if (options.gamma) {
    std::vector<int64_t> shape = {setup_.groups, 1, 1, 1};
    if (ctx.target == qsdk::QuantTarget::output) shape = {1, setup_.groups, 1, 1};
    if (ctx.target == qsdk::QuantTarget::activation)
      option_error(setup_, "gamma", "gamma applies to weight and output quantizers only");
    gamma_ = register_parameter("gamma", torch::ones(shape));
  }
  if (options.adaptive == "var-mean" && ctx.target != qsdk::QuantTarget::weight)
    option_error(setup_, "adaptive", "var-mean standardisation applies to weights only",
                 "remove `adaptive` from the activation/output quantizer");
  if (options.adaptive == "var-mean" && setup_.norm_groups != 1 && setup_.norm_groups != setup_.shape[0])
    option_error(setup_, "adaptive",
                 "var-mean needs one statistics group or one per output channel, got " +
                     std::to_string(setup_.norm_groups),
                 "set independent_norm = true to standardise over the whole layer");
}

GroupLayout QuantizerBase::layout_for(const at::Tensor& x, int64_t groups) const {
  if (setup_.target == qsdk::QuantTarget::weight) return GroupLayout::flat_blocks(x.numel(), groups);
  return GroupLayout::channel_blocks(x, groups);
}

std::vector<int64_t> QuantizerBase::group_param_shape() const {
  if (setup_.target == qsdk::QuantTarget::weight) return {setup_.groups, 1, 1, 1};
  if (setup_.groups == 1) return {1};
  return {1, setup_.groups, 1, 1};
}

at::Tensor QuantizerBase::standardize(const at::Tensor& w) const {
  if (common_.adaptive != "var-mean" || setup_.target != qsdk::QuantTarget::weight) return w;
  at::Tensor d = w.detach().reshape({setup_.norm_groups, -1});
  at::Tensor mean = d.mean(1, true);
  at::Tensor std = d.std(1, /*unbiased=*/true, true);
  return ((w.reshape({setup_.norm_groups, -1}) - mean) / std).view(w.sizes());
}

bool QuantizerBase::advance_counter() {
  torch::NoGradGuard no_grad;
  // The counter is float32: the host copy rounds as the buffer does.
  const double next = static_cast<double>(static_cast<float>(iteration_host_.get(iteration_) + 1.0));
  iteration_.add_(1);
  iteration_host_.updated(iteration_, next);
  return in_warmup();
}

bool QuantizerBase::in_warmup() const {
  return iteration_host_.get(iteration_) <= static_cast<double>(common_.stable);
}

void QuantizerBase::warmup_clip(at::Tensor& clip, const at::Tensor& x) const {
  torch::NoGradGuard no_grad;
  at::Tensor m = x.detach().abs().max().to(clip.dtype());
  // In a data-parallel run, the largest activation of all ranks' batches (what one
  // process would see on the global batch); weights are the same on every rank.
  if (setup_.target != qsdk::QuantTarget::weight && qsdk::collectives().world_size() > 1) {
    m = m.reshape({1}).contiguous();
    qsdk::collectives().all_reduce_max_(m);
    m = m.reshape({});
  }
  if (common_.correlate > 0) m = m * common_.correlate;
  at::Tensor it = iteration_.to(clip.dtype()).to(clip.device());
  clip.copy_((m + (it - 1) * clip) / it);
}

at::Tensor QuantizerBase::apply_gamma(const at::Tensor& y) const {
  if (!gamma_.defined()) return y;
  if (setup_.target == qsdk::QuantTarget::weight)
    return (y.reshape({setup_.groups, -1}) * gamma_.reshape({setup_.groups, 1})).view(y.sizes());
  return y * gamma_;
}

double QuantizerBase::level_steps() const { return level_num_host_.get(level_num_) - 1.0; }

bool all_on_cpu(const at::Tensor& t, bool (*pred)(float)) {
  if (!t.defined() || !t.device().is_cpu()) return false;
  const at::Tensor c = t.detach().to(at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!pred(p[i])) return false;
  return true;
}

void QuantizerBase::require_target(std::initializer_list<qsdk::QuantTarget> allowed,
                                   const std::string& method) const {
  for (auto t : allowed)
    if (t == setup_.target) return;
  option_error(setup_, "target",
               method + " does not support " + std::string(qsdk::to_string(setup_.target)) + " quantizers",
               "choose another quantizer type for this tensor");
}

}  // namespace qplug_quant_common
