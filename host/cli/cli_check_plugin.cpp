// `qhost check-plugin`: load + stamp + schema check (both done by the loader
// and registry), then default construction of every component whose kind can
// be built without data, with a small forward/backward for quantizers.
#include "cli/cli.hpp"

#include "platform/errors.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <cmath>
#include <ostream>

namespace qhost {

namespace {
void expect(bool ok, const std::string& what) {
  if (!ok) throw qsdk::Error(qsdk::ErrorCategory::plugin, "", what);
}

// One quantizer, one target: build with defaults, forward + backward in
// training mode, forward in eval mode.
std::string exercise_quantizer(const Registry& registry, const Component& c, qsdk::QuantTarget target) {
  qsdk::QuantizerContext ctx;
  ctx.target = target;
  ctx.module_path = "check.conv";
  ctx.role = qsdk::LayerRole::body;
  ctx.batch_size = 2;
  ctx.input_size = 8;
  torch::Tensor x;
  if (target == qsdk::QuantTarget::weight) {
    ctx.shape = {4, 3, 3, 3};
    x = torch::randn({4, 3, 3, 3});
  } else {
    ctx.shape = {1, 3, 1, 1};
    x = torch::rand({2, 3, 8, 8}) * 2;
  }
  auto q = registry.make_quantizer(qsdk::Table{{"type", c.spec.name}}, ctx);
  return call_plugin(c, [&] {
    x.requires_grad_(true);
    q->train();
    torch::Tensor y = q->forward(x);
    expect(y.defined() && y.sizes() == x.sizes(), "forward changed the shape from " + c10::str(x.sizes()) + " to " +
                                                      (y.defined() ? c10::str(y.sizes()) : "undefined"));
    expect(torch::isfinite(y).all().item<bool>(), "forward produced non-finite values");
    y.sum().backward();
    expect(x.grad().defined(), "backward gave no gradient for the input");
    expect(torch::isfinite(x.grad()).all().item<bool>(), "backward produced non-finite gradients");
    q->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor z = q->forward(x.detach());
    expect(z.sizes() == x.sizes(), "eval forward changed the shape");
    int64_t levels = q->num_levels();
    expect(levels >= 2, "num_levels() is " + std::to_string(levels) + ", expected at least 2");
    return std::to_string(levels) + " levels";
  });
}
}  // namespace

void check_plugin(std::ostream& out, Registry& registry, PluginLoader& loader, const std::string& name_or_path) {
  const LoadedPlugin& p = loader.load(name_or_path);  // stamp, name and schemas are checked here
  out << "plugin '" << p.name << "' " << p.version << " (" << p.path << "): loaded, stamp and schemas OK\n";
  torch::manual_seed(0);
  std::vector<std::string> failures;
  int count = 0;
  for (const Component* c : registry.components()) {
    if (c->provider.path != p.path) continue;
    ++count;
    std::string key = c->key();
    try {
      switch (c->spec.kind) {
        case qsdk::Kind::quantizer: {
          std::vector<std::string> done;
          for (auto target : {qsdk::QuantTarget::weight, qsdk::QuantTarget::activation}) {
            try {
              done.push_back(std::string(qsdk::to_string(target)) + " " + exercise_quantizer(registry, *c, target));
            } catch (const qsdk::Error& e) {
              // A config error at construction means "not for this target"
              // (e.g. an activation-only method); anything else is a failure.
              if (e.category() != qsdk::ErrorCategory::config) throw;
              out << "  " << key << ": not usable as " << qsdk::to_string(target) << " quantizer: " << e.what() << "\n";
            }
          }
          if (done.empty()) throw qsdk::Error(qsdk::ErrorCategory::plugin, key, "cannot be built for any target");
          out << "  ok  " << key << ": forward/backward on " << join(done, ", ") << "\n";
          break;
        }
        case qsdk::Kind::scheduler: {
          auto s = registry.make_scheduler(qsdk::Table{{"type", c->spec.name}}, qsdk::SchedulerContext{});
          double lr = call_plugin(*c, [&] { return s->lr(0, 0); });
          if (!std::isfinite(lr) || lr < 0)
            throw qsdk::Error(qsdk::ErrorCategory::plugin, key, "lr(0, 0) is " + std::to_string(lr));
          out << "  ok  " << key << ": lr(0, 0) = " << lr << "\n";
          break;
        }
        default:
          out << "  ok  " << key << ": schema valid (" << c->spec.schema.fields.size()
              << " options; not constructed: needs data or a model)\n";
      }
    } catch (const qsdk::Error& e) {
      std::string msg = e.what();
      if (msg.rfind(key, 0) != 0) msg = key + ": " + msg;
      failures.push_back(msg);
      out << "  FAIL " << msg << "\n";
    }
  }
  if (count == 0) failures.push_back("plugin '" + p.name + "' registered no components");
  if (!failures.empty())
    throw qsdk::Error(qsdk::ErrorCategory::plugin, p.path,
                      std::to_string(failures.size()) + " check(s) failed:\n  " + join(failures, "\n  "));
}

}  // namespace qhost
