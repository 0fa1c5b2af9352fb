// LQ-Net: learned quantization with a QEM-fitted basis (Zhang et al., ECCV 2018)
// as the reference QTool implements it (docs/methods.md#lq-net), with the intended floor
// bit extraction in the basis refit (docs/methods.md#reference-bugs-and-what-qtool-does item 2).
#include <lqnet/lqnet_math.hpp>
#include <quant_common/quantizer_base.hpp>

#include <qsdk/plugin.hpp>

#include <torch/torch.h>

#include <cmath>

namespace qplug_lqnet {

namespace qc = qplug_quant_common;

/// Options of the `lqnet` quantizer.
///
/// Example (TOML): `[quant.weight] type = "lqnet"  bits = 2  adaptive = "mean-var"  custom_update = true`
struct LqNetOptions : qc::CommonOptions {
  /// Basis update: running mean of the per-step least-squares fits (reference keyword
  /// custom-update) instead of the 0.9/0.1 moving average.
  bool custom_update = false;
  /// The option schema.
  static qsdk::Schema<LqNetOptions> schema() {
    qsdk::Schema<LqNetOptions> s("LQ-Net: levels spanned by a learned binary basis, refit by least squares in training");
    qc::add_common_fields(
        s, qc::kBits | qc::kLevels | qc::kHalfRange | qc::kQuantGroup | qc::kScale | qc::kStable | qc::kAdaptive,
        {"", "threshold mix: each decision threshold is scale * lower + (1 - scale) * upper of its two adjacent "
             "sorted levels (signed: mirrored below the middle level); 0.5 = midpoints"},
        {qc::Adaptive::none, qc::Adaptive::mean, qc::Adaptive::var, qc::Adaptive::mean_var, qc::Adaptive::min});
    s.field("custom_update", &LqNetOptions::custom_update,
            "basis = running mean of all least-squares fits (reference keyword custom-update)");
    return s;
  }
};

/// LQ-Net fake quantizer; buffers basis, auxil, codec_vector, codec_index (int32),
/// thrs_multiplier, iteration, level_num (docs/golden.md#parameter-and-state-names).
class LqNetQuantizerImpl : public qc::QuantizerBase, public qsdk::LevelExportable {
 public:
  LqNetQuantizerImpl(const LqNetOptions& o, const qsdk::QuantizerContext& ctx)
      : QuantizerBase(o, ctx), custom_update_(o.custom_update), adaptive_(o.adaptive) {
    require_target({qsdk::QuantTarget::activation, qsdk::QuantTarget::weight}, "lqnet");
    const bool fm = setup_.target == qsdk::QuantTarget::activation;
    if (fm && adaptive_ == qc::Adaptive::mean_var)
      qc::option_error(setup_, "adaptive", "mean-var applies to LQ-Net weights", "use mean, var or min for activations");
    if (!fm && adaptive_ == qc::Adaptive::min)
      qc::option_error(setup_, "adaptive", "min applies to LQ-Net activations", "use mean, var or mean-var for weights");
    const int64_t L = setup_.levels;
    if (L > 256) qc::option_error(setup_, "levels", "LQ-Net supports at most 256 levels");
    // The reference switches ternary to 1 bit (a degenerate code table;
    // docs/methods.md#binary-ternary-and-2-bit-levels).
    bit_ = L == 3 ? 1 : setup_.bits;
    if (L != 3 && L > (int64_t{1} << bit_))
      qc::option_error(setup_, "levels", std::to_string(L) + " levels need more than " + std::to_string(bit_) + " bits");
    const int64_t G = setup_.groups;
    const double base = (fm ? 0.6745 * 2.0 : 0.6745 * std::sqrt(2.0 / static_cast<double>(setup_.fan))) /
                        std::pow(2.0, static_cast<double>(bit_ - 1));
    at::Tensor basis = torch::empty({bit_, G});
    for (int64_t i = 0; i < bit_; ++i) basis[i].fill_(static_cast<float>(std::pow(2.0, i) * base));
    basis_ = register_buffer("basis", basis);
    auxil_ = register_buffer("auxil", torch::zeros({bit_, G}));
    at::Tensor codec = torch::empty({L, bit_});
    for (int64_t k = 0; k < L; ++k)
      for (int64_t i = 0; i < bit_; ++i) {
        const int64_t b = (k >> i) & 1;
        codec[k][i] = static_cast<float>(setup_.half_range ? b : 2 * b - 1);
      }
    codec_vector_ = register_buffer("codec_vector", codec);
    codec_index_ = register_buffer("codec_index", torch::arange(L, torch::kInt32));
    at::Tensor thrs = torch::zeros({L - 1, L});
    const double s = o.scale;
    for (int64_t r = 1; r < L; ++r) {
      double lo = s, hi = 1.0 - s;
      if (!setup_.half_range) {
        const double half = static_cast<double>(L) / 2.0;
        if (r < half) {
          lo = 1.0 - s;
          hi = s;
        } else if (r == half) {
          lo = hi = 0.5;
        }
      }
      thrs[r - 1][r - 1] = static_cast<float>(lo);
      thrs[r - 1][r] = static_cast<float>(hi);
    }
    thrs_multiplier_ = register_buffer("thrs_multiplier", thrs);
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const bool fm = setup_.target == qsdk::QuantTarget::activation;
    at::Tensor xc = x.contiguous();
    at::Tensor sorted, sort_id, thr, xn;
    Norm norm;
    {
      torch::NoGradGuard no_grad;
      const Tables t = tables();
      sorted = t.sorted;
      sort_id = t.sort_id;
      thr = t.thr;
      norm = normalize(xc.detach());
      xn = norm.x.contiguous();
    }
    const qc::GroupLayout layout = layout_for(xc, setup_.groups);
    at::Tensor out, idx;
    if (!norm.active) {
      auto r = lq_assign(xc, sorted, thr, layout, fm);
      out = r[0];
      idx = r[1];
    } else {
      std::vector<at::Tensor> r;
      {
        torch::NoGradGuard no_grad;
        r = lq_assign(xn, sorted, thr, layout, false);
      }
      idx = r[1];
      at::Tensor mask;
      if (fm) mask = xn < sorted[sorted.size(0) - 1].reshape({1, setup_.groups, 1}).expand(
                               layout.grouped_view(xn.numel())).reshape(xn.sizes());
      out = qc::masked_ste(xc, denormalize(r[0], norm), mask);
    }
    if (is_training()) refit(xn, idx, sort_id, layout);
    if (in_warmup()) return x;
    return out;
  }

  bool uses_levels() const override { return true; }

  /// Codes are LQ-Net's own encoding (bit i of a code says whether basis i is
  /// added, or with which sign): the table holds codec_vector * basis per group,
  /// after the weight normalisation forward undoes (docs/methods.md#export-to-onnx).
  qsdk::LevelWeightExport export_weight_levels(const torch::Tensor& w) const override {
    if (setup_.target != qsdk::QuantTarget::weight)
      refuse_export("lqnet", "export_weight_levels on an activation quantizer");
    require_past_warmup();
    torch::NoGradGuard no_grad;
    const Tables t = tables();
    const at::Tensor xc = w.detach().contiguous();
    const Norm norm = normalize(xc);
    const qc::GroupLayout layout = layout_for(xc, setup_.groups);
    const auto r = lq_assign(norm.x.contiguous(), t.sorted, t.thr, layout, false);
    const at::Tensor y = norm.active ? denormalize(r[0], norm) : r[0];
    // Sorted level index -> the code of that level: sort_id[index, group].
    const at::Tensor codes = t.sort_id.t().contiguous().gather(1, r[1].reshape({setup_.groups, -1}));
    at::Tensor table = t.levels.t().contiguous();  // [G, L], by code
    if (norm.active) table = table * norm.scale + norm.shift;  // denormalize's arithmetic, per group row
    return level_weight_export(y, codes, table, "lqnet");
  }

  /// Thresholds and sorted levels per group, compared with a strict `>` as in
  /// lq_assign. The optional normalisation divides each sample by its own
  /// statistics, which no constant threshold expresses: refused.
  qsdk::LevelActivationExport export_activation_levels() const override {
    if (setup_.target == qsdk::QuantTarget::weight)
      refuse_export("lqnet", "export_activation_levels on a weight quantizer");
    require_past_warmup();
    if (adaptive_ != qc::Adaptive::none)
      refuse_export("lqnet",
                    "adaptive = " + qsdk::enum_spelling(qc::adaptive_names(), adaptive_) +
                        " normalises each sample by statistics of that sample, so its "
                    "thresholds are no constants",
                    "train the activations with adaptive = none to deploy them");
    torch::NoGradGuard no_grad;
    const Tables t = tables();
    return level_activation_export(t.thr.t(), t.sorted.t(), false, "lqnet");
  }

 private:
  /// Levels by code, sorted per group with their codes, and the thresholds
  /// (docs/methods.md#lq-net-forward steps 1 and 2).
  struct Tables {
    at::Tensor levels, sorted, sort_id, thr;
  };
  Tables tables() const {
    Tables t;
    t.levels = at::matmul(codec_vector_, basis_);  // [L, G]
    std::tie(t.sorted, t.sort_id) = t.levels.sort(0);
    t.thr = at::matmul(thrs_multiplier_, t.sorted);  // [L-1, G]
    return t;
  }

  /// (export) In evaluation forward returns its input while iteration <= stable
  /// (the counter runs in training only).
  void require_past_warmup() const {
    if (in_warmup())
      refuse_export("lqnet",
                    "it is still in its warm-up (iteration " + std::to_string(iteration_.item<int64_t>()) +
                        " of stable = " + std::to_string(common_.stable) + "), where forward returns its input",
                    "export a checkpoint trained past the warm-up");
  }

  struct Norm {
    bool active = false;
    at::Tensor x, shift, scale;  // xn = (x - shift) / scale
  };

  /// Optional normalisation (docs/methods.md#lq-net-forward step 3), statistics without gradient.
  Norm normalize(const at::Tensor& x) const {
    Norm n;
    n.x = x;
    if (adaptive_ == qc::Adaptive::none) return n;
    n.active = true;
    if (setup_.target == qsdk::QuantTarget::activation) {
      at::Tensor flat = x.reshape({x.size(0), -1});
      std::vector<int64_t> bshape(static_cast<size_t>(x.dim()), 1);
      bshape[0] = x.size(0);
      n.shift = torch::zeros({1}, x.options());
      n.scale = torch::ones({1}, x.options());
      if (adaptive_ == qc::Adaptive::mean) n.scale = (flat.mean(1) + 1e-5).reshape(bshape);
      if (adaptive_ == qc::Adaptive::var) n.scale = (flat.std(1, true) + 1e-5).reshape(bshape);
      if (adaptive_ == qc::Adaptive::min) n.shift = x.min();
    } else {
      at::Tensor rows = x.reshape({setup_.groups, -1});
      n.shift = torch::zeros({setup_.groups, 1}, x.options());
      n.scale = torch::ones({setup_.groups, 1}, x.options());
      if (adaptive_ == qc::Adaptive::mean || adaptive_ == qc::Adaptive::mean_var) n.shift = rows.mean(1, true);
      if (adaptive_ == qc::Adaptive::var || adaptive_ == qc::Adaptive::mean_var)
        n.scale = rows.std(1, true, true) + 1e-5;
      n.x = ((rows - n.shift) / n.scale).view(x.sizes());
      return n;
    }
    n.x = (x - n.shift) / n.scale;
    return n;
  }

  at::Tensor denormalize(const at::Tensor& y, const Norm& n) const {
    if (setup_.target == qsdk::QuantTarget::activation) return y * n.scale + n.shift;
    return (y.reshape({setup_.groups, -1}) * n.scale + n.shift).view(y.sizes());
  }

  /// QEM basis refit (docs/methods.md#lq-net-basis-refit-qem) with floor bit extraction.
  void refit(const at::Tensor& xn, const at::Tensor& idx, const at::Tensor& sort_id, const qc::GroupLayout& layout) {
    torch::NoGradGuard no_grad;
    const int64_t L = setup_.levels, G = setup_.groups;
    const bool fm = setup_.target == qsdk::QuantTarget::activation;
    const auto view = layout.grouped_view(xn.numel());
    at::Tensor xv = xn.reshape(view);
    at::Tensor iv = idx.reshape(view);
    at::Tensor gid = torch::arange(G, iv.options()).reshape({1, G, 1}).expand(view);
    // Original (code) index of each element's sorted level: sort_id[sorted, g].
    at::Tensor code = sort_id.t().contiguous().flatten().index_select(0, (gid * L + iv).flatten());
    at::Tensor slot = gid.flatten() * L + code;
    at::Tensor counts = torch::zeros({G * L}, xn.options()).index_add_(0, slot, torch::ones({slot.numel()}, xn.options()));
    at::Tensor sums = torch::zeros({G * L}, xn.options()).index_add_(0, slot, xv.flatten());
    counts = counts.view({G, L});
    sums = sums.view({G, L});
    // Code bits B[k][i] = (k >> i) & 1 (signed: 2b - 1).
    at::Tensor bits = torch::empty({L, bit_}, xn.options());
    for (int64_t k = 0; k < L; ++k)
      for (int64_t i = 0; i < bit_; ++i) {
        const int64_t b = (k >> i) & 1;
        bits[k][i] = static_cast<float>(setup_.half_range ? b : 2 * b - 1);
      }
    // BtB[g] = B^T diag(counts[g]) B; BtX[g] = B^T sums[g].
    at::Tensor btb = at::einsum("gk,ki,kj->gij", {counts, bits, bits});
    at::Tensor btx = at::matmul(sums, bits);  // [G, bit]
    at::Tensor diag = btb.diagonal(0, 1, 2);
    if (fm) {
      diag.copy_(at::where(diag == 0, at::full({}, 1e-5, diag.options()), diag));
    } else {
      diag.copy_((diag + 1e-4) * 1.000001);
      btx = btx + 1e-4 * basis_.t();
    }
    // A group whose elements all share one code gives a singular system (the
    // reference raises); the pseudo-inverse keeps training going with the
    // minimum-norm least-squares fit.
    auto [inv, info] = at::linalg_inv_ex(btb);
    if (info.ne(0).any().item<bool>()) inv = at::linalg_pinv(btb);
    at::Tensor fit = at::matmul(inv, btx.unsqueeze(2)).squeeze(2).t();  // [bit, G]
    auxil_.copy_(fit);
    if (custom_update_) {
      basis_.copy_((basis_ * iteration_ + auxil_) / (iteration_ + 1));
    } else {
      basis_.copy_(0.9 * basis_ + 0.1 * auxil_);
    }
    iteration_.add_(1);
  }

  bool custom_update_;
  qc::Adaptive adaptive_;
  int64_t bit_ = 2;
  at::Tensor basis_, auxil_, codec_vector_, codec_index_, thrs_multiplier_;
};

}  // namespace qplug_lqnet

QSDK_PLUGIN("lqnet", "0.1.0", "LQ-Net learned-basis quantization of activations and weights") {
  registrar.add_quantizer<qplug_lqnet::LqNetQuantizerImpl, qplug_lqnet::LqNetOptions>("lqnet");
}
