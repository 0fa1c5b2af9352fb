// Weight var-mean normalisation before weight quantization (docs/methods.md#weight-normalisation-var-mean).
#include <qsdk/plugin.hpp>
#include <torch/torch.h>

namespace qplug_wt_varmean {

/// Which weights share the standardisation statistics.
enum class Granularity { layer, channel };

struct WtVarmeanOptions {
  Granularity granularity = Granularity::layer;
  double eps = 0.0;
  static qsdk::Schema<WtVarmeanOptions> schema() {
    return qsdk::Schema<WtVarmeanOptions>(
               "Standardise each layer's weight (w - mean) / std with detached statistics before quantization")
        .field("granularity", &WtVarmeanOptions::granularity, "statistics per layer or per output channel",
               {{"layer", Granularity::layer}, {"channel", Granularity::channel}})
        .field("eps", &WtVarmeanOptions::eps, "added to the std (the reference uses 0)")
        .at_least(0.0);
  }
};

/// (w - mean) / std with the unbiased std, statistics detached, so
/// d(ŵ)/d(w) = 1/std exactly as in the reference.
inline torch::Tensor varmean(const torch::Tensor& w, bool per_channel, double eps) {
  auto flat = per_channel ? w.detach().reshape({w.size(0), -1}) : w.detach().reshape({1, -1});
  auto mean = flat.mean(1, true);
  auto std = flat.std(1, /*unbiased=*/true, true) + eps;
  std::vector<int64_t> shape(w.dim(), 1);
  shape[0] = per_channel ? w.size(0) : 1;
  return (w - mean.view(shape)) / std.view(shape);
}

/// Applied by the host's layers to every weight that has a weight quantizer.
class WtVarmean : public qsdk::Trick {
 public:
  WtVarmean(WtVarmeanOptions options, const qsdk::TrickContext&) : options_(std::move(options)) {}
  torch::Tensor transform_weight(const torch::Tensor& weight, const std::string&) override {
    return varmean(weight, options_.granularity == Granularity::channel, options_.eps);
  }

 private:
  WtVarmeanOptions options_;
};

}  // namespace qplug_wt_varmean

QSDK_PLUGIN("wt_varmean", "0.1.0", "Weight var-mean normalisation") {
  using namespace qplug_wt_varmean;
  registrar.add_trick<WtVarmean, WtVarmeanOptions>("wt_varmean");
}
