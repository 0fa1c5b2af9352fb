// The process-wide hooks of qsdk/distributed.hpp. They live in libqsdk.so, which
// the host and every plugin share, so a plugin loaded with RTLD_LOCAL still sees
// what the host installed.
#include <qsdk/distributed.hpp>

#include <torch/nn/modules/batchnorm.h>

#include <mutex>

namespace qsdk {
namespace {

class SingleRank final : public Collectives {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  void all_reduce_sum_(torch::Tensor&) override {}
  void all_reduce_max_(torch::Tensor&) override {}
};

struct Hooks {
  std::mutex mutex;
  std::shared_ptr<Collectives> collectives;
  BatchNorm2dMaker batch_norm2d;
};

Hooks& hooks() {
  static Hooks h;
  return h;
}

}  // namespace

Collectives::~Collectives() = default;

void Collectives::all_reduce_mean_(torch::Tensor& t) {
  const int64_t n = world_size();
  if (n <= 1) return;
  all_reduce_sum_(t);
  t.div_(static_cast<double>(n));
}

Collectives& collectives() {
  static SingleRank single;
  auto& h = hooks();
  std::lock_guard<std::mutex> lock(h.mutex);
  return h.collectives ? *h.collectives : single;
}

void set_collectives(std::shared_ptr<Collectives> c) {
  auto& h = hooks();
  std::lock_guard<std::mutex> lock(h.mutex);
  h.collectives = std::move(c);
}

torch::nn::AnyModule make_batch_norm2d(const torch::nn::BatchNorm2dOptions& options) {
  BatchNorm2dMaker maker;
  {
    auto& h = hooks();
    std::lock_guard<std::mutex> lock(h.mutex);
    maker = h.batch_norm2d;
  }
  if (maker) return maker(options);
  return torch::nn::AnyModule(torch::nn::BatchNorm2d(options));
}

void set_batch_norm2d_maker(BatchNorm2dMaker maker) {
  auto& h = hooks();
  std::lock_guard<std::mutex> lock(h.mutex);
  h.batch_norm2d = std::move(maker);
}

}  // namespace qsdk
