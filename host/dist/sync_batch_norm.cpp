#include "dist/sync_batch_norm.hpp"

#include <qsdk/distributed.hpp>

#include <torch/torch.h>

namespace qhost {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor per_channel(const at::Tensor& t) { return t.view({1, -1, 1, 1}); }

// The cross-rank normalisation; weight/bias may be undefined (affine = false).
struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, at::Tensor running_mean, at::Tensor running_var,
                               double momentum, double eps) {
    auto& comm = qsdk::collectives();
    const int64_t c = x.size(1);
    const auto xc = x.contiguous();
    const double n_local = static_cast<double>(xc.numel() / c);
    // Local two-pass moments, combined over ranks in double: exact to rounding.
    const auto mean_l = xc.mean({0, 2, 3});
    const auto m2_l = (xc - per_channel(mean_l)).square().sum({0, 2, 3});
    const auto md = mean_l.to(torch::kDouble);
    auto stats = torch::cat({md * n_local, m2_l.to(torch::kDouble) + md * md * n_local,
                             torch::full({1}, n_local, md.options())});
    comm.all_reduce_sum_(stats);
    const double n = stats[2 * c].item<double>();
    const auto mean_d = stats.slice(0, 0, c) / n;
    const auto var_d = ((stats.slice(0, c, 2 * c) - n * mean_d * mean_d) / n).clamp_min(0.0);
    const auto mean = mean_d.to(x.scalar_type());
    const auto invstd = (var_d + eps).rsqrt().to(x.scalar_type());
    if (running_mean.defined()) {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1.0 - momentum).add_(mean, momentum);
      running_var.mul_(1.0 - momentum).add_((var_d * (n / std::max(n - 1.0, 1.0))).to(x.scalar_type()), momentum);
    }
    auto y = (xc - per_channel(mean)) * per_channel(invstd);
    if (weight.defined()) y = y * per_channel(weight) + per_channel(bias);
    ctx->save_for_backward({xc, weight, mean, invstd});
    ctx->saved_data["n"] = n;
    ctx->saved_data["has_bias"] = bias.defined();
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& mean = saved[2];
    const auto& invstd = saved[3];
    const double n = ctx->saved_data["n"].toDouble();
    const auto gy = grads[0].contiguous();
    const int64_t c = x.size(1);
    const auto xmu = x - per_channel(mean);
    const auto sum_dy_l = gy.sum({0, 2, 3});
    const auto sum_dy_xmu_l = (gy * xmu).sum({0, 2, 3});
    at::Tensor grad_w, grad_b;
    if (weight.defined()) grad_w = sum_dy_xmu_l * invstd;
    if (ctx->saved_data["has_bias"].toBool()) grad_b = sum_dy_l.clone();
    // Every rank's Σdy and Σdy·(x−μ): the input gradient of the sum of all ranks' losses.
    auto sums = torch::cat({sum_dy_l, sum_dy_xmu_l}).to(torch::kDouble);
    qsdk::collectives().all_reduce_sum_(sums);
    const auto mean_dy = (sums.slice(0, 0, c) / n).to(x.scalar_type());
    const auto mean_dy_xmu = (sums.slice(0, c, 2 * c) / n).to(x.scalar_type());
    const auto scale = weight.defined() ? invstd * weight : invstd;
    auto gx = (gy - per_channel(mean_dy) - xmu * per_channel(invstd * invstd * mean_dy_xmu)) * per_channel(scale);
    return {gx, grad_w, grad_b, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

SyncBatchNorm2dImpl::SyncBatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& o) : options(o) { reset(); }

void SyncBatchNorm2dImpl::reset() {
  const int64_t c = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  }
}

torch::Tensor SyncBatchNorm2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "SyncBatchNorm2d expects [N, C, H, W], got ", x.dim(), " dimensions");
  double factor = 0.0;
  if (is_training() && options.track_running_stats()) {
    num_batches_tracked.add_(1);
    factor = options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
  }
  const bool use_batch_stats = is_training() || !options.track_running_stats();
  if (!use_batch_stats || qsdk::collectives().world_size() <= 1)
    return torch::batch_norm(x, weight, bias, running_mean, running_var, use_batch_stats, factor, options.eps(),
                             at::globalContext().userEnabledCuDNN());
  return SyncBatchNormFunction::apply(x, weight, bias, running_mean, running_var, factor, options.eps())[0];
}

}  // namespace qhost
