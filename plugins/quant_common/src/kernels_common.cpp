// Group layouts, the masked straight-through function and the kernel switch.
#include <quant_common/kernels.hpp>

#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace qplug_quant_common {

GroupLayout GroupLayout::whole(int64_t numel) {
  GroupLayout l;
  l.inner = 1;
  l.period = std::max<int64_t>(numel, 1);
  l.per_group = l.period;
  l.groups = 1;
  return l;
}

GroupLayout GroupLayout::channel_blocks(const at::Tensor& x, int64_t groups) {
  TORCH_CHECK(x.dim() >= 2, "channel grouping needs a tensor with a channel dimension, got ", x.sizes());
  const int64_t c = x.size(1);
  TORCH_CHECK(groups >= 1 && c % groups == 0, "cannot split ", c, " channels into ", groups, " groups");
  if (groups == 1) return whole(x.numel());
  GroupLayout l;
  l.inner = 1;
  for (int64_t d = 2; d < x.dim(); ++d) l.inner *= x.size(d);
  l.period = c;
  l.per_group = c / groups;
  l.groups = groups;
  return l;
}

GroupLayout GroupLayout::flat_blocks(int64_t numel, int64_t groups) {
  TORCH_CHECK(groups >= 1 && numel % groups == 0, "cannot split ", numel, " elements into ", groups, " groups");
  if (groups == 1) return whole(numel);
  GroupLayout l;
  l.inner = 1;
  l.period = numel;
  l.per_group = numel / groups;
  l.groups = groups;
  return l;
}

std::vector<int64_t> GroupLayout::grouped_view(int64_t numel) const {
  const int64_t block = per_group * inner;
  const int64_t outer = numel / (period * inner);
  return {outer, groups, block};
}

namespace {
std::atomic<int> g_fused{-1};

class MaskedSte : public torch::autograd::Function<MaskedSte> {
 public:
  // An undefined tensor cannot be a Function input in LibTorch 1.13, so "no
  // mask" travels as a flag next to an empty placeholder.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y,
                            const at::Tensor& mask, bool has_mask) {
    ctx->saved_data["has_mask"] = has_mask;
    if (has_mask) ctx->save_for_backward({mask});
    (void)x;
    return y.detach().clone();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    at::Tensor g = grad[0];
    if (ctx->saved_data["has_mask"].toBool()) g = g * ctx->get_saved_variables()[0];
    return {g, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
}  // namespace

at::Tensor masked_ste(const at::Tensor& x, const at::Tensor& y, const at::Tensor& mask) {
  const bool has_mask = mask.defined();
  // Boolean masks stay boolean (1 byte per element saved for backward).
  at::Tensor m = !has_mask ? at::empty({0}, x.options())
                           : (mask.scalar_type() == at::kBool ? mask.detach() : mask.detach().to(x.scalar_type()));
  return MaskedSte::apply(x, y.detach(), m, has_mask);
}

void set_use_fused_kernels(bool fused) { g_fused.store(fused ? 1 : 0); }

bool use_fused_kernels() {
  int v = g_fused.load();
  if (v < 0) {
    // QTOOL_QUANT_COMPOSED=1 selects the composed reference in every plugin
    // (each plugin links its own copy of this library).
    const char* env = std::getenv("QTOOL_QUANT_COMPOSED");
    v = (env != nullptr && std::strcmp(env, "0") != 0 && env[0] != '\0') ? 0 : 1;
    g_fused.store(v);
  }
  return v == 1;
}

}  // namespace qplug_quant_common
