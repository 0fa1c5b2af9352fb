// my_method: a uniform fake quantizer with a straight-through gradient, the
// smallest complete qtool plugin (see sdk/README.md, "Writing a plugin").
#include <qsdk/plugin.hpp>

#include <torch/torch.h>

namespace qplug_my_method {

/// Options, bound to a schema: names, types, defaults, ranges and docs in one place.
struct MyUniformOptions {
  int64_t bits = 2;        ///< bit width
  double clip = 1.0;       ///< values are clipped to [-clip, clip] (weights) or [0, clip] (activations)
  bool ste = true;         ///< straight-through gradient (false: gradient of the clip only)

  static qsdk::Schema<MyUniformOptions> schema() {
    return qsdk::Schema<MyUniformOptions>("uniform quantizer on [-clip, clip] / [0, clip]")
        .field("bits", &MyUniformOptions::bits, "bit width").range(1, 8)
        .field("clip", &MyUniformOptions::clip, "clipping value").greater_than(0).at_most(1e3)
        .field("ste", &MyUniformOptions::ste, "straight-through estimator for the rounding");
  }
};

/// The quantizer: a torch::nn::Module implementing qsdk::QuantizerImpl.
class MyUniformImpl : public qsdk::QuantizerImpl {
 public:
  // The context says what is quantized: weights are signed, the activations
  // a quantized layer sees come after a ReLU, so they are unsigned and all
  // levels go to [0, clip]. (The stem and the classifier are not quantized
  // unless [quant] quantize_stem / quantize_head say so.)
  MyUniformImpl(MyUniformOptions options, const qsdk::QuantizerContext& context)
      : options_(options), lo_(context.target == qsdk::QuantTarget::weight ? -options.clip : 0.0) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    const double step = (options_.clip - lo_) / static_cast<double>(num_levels() - 1);
    torch::Tensor clipped = x.clamp(lo_, options_.clip);
    torch::Tensor q = ((clipped - lo_) / step).round() * step + lo_;
    // Forward value q; backward: the gradient of `clipped` (straight-through).
    return options_.ste ? clipped + (q - clipped).detach() : q;
  }

  int64_t num_levels() const override { return int64_t{1} << options_.bits; }

 private:
  MyUniformOptions options_;
  double lo_;  ///< lowest level: -clip (signed) or 0 (unsigned)
};

}  // namespace qplug_my_method

// The plugin's one entry point: name (= the file's libqplug_<name>.so),
// version, summary, and the registrations.
QSDK_PLUGIN("my_method", "0.1.0", "an example quantizer built out of tree") {
  registrar.add_quantizer<qplug_my_method::MyUniformImpl, qplug_my_method::MyUniformOptions>("my_uniform");
}
