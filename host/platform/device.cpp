#include "platform/device.hpp"

#include <qsdk/error.hpp>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/version.h>

#ifdef QTOOL_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <mutex>

// LibTorch 2.4 replaced the per-device autocast functions (is_cpu_enabled,
// set_autocast_gpu_dtype, ...) by ones taking the device type and deprecated
// the old names; 1.13 (Debian) has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define QTOOL_AUTOCAST_BY_DEVICE 1
#endif

namespace qhost {
namespace {

constexpr const char* kDeviceKey = "experiment.device";
constexpr const char* kPrecisionKey = "train.precision";

// "auto" | "cpu" | "cuda" | "cuda:N"; *index = N or -1.
bool parse_spec(const std::string& spec, std::string* kind, int64_t* index) {
  *index = -1;
  if (spec == "auto" || spec == "cpu" || spec == "cuda") {
    *kind = spec;
    return true;
  }
  if (spec.rfind("cuda:", 0) != 0 || spec.size() == 5 || spec.size() > 9) return false;
  for (size_t i = 5; i < spec.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(spec[i]))) return false;
  *kind = "cuda";
  *index = std::stoll(spec.substr(5));
  return true;
}

const char* kSpecHint = "device is \"auto\" (CUDA when available, else the CPU), \"cpu\", \"cuda\" or \"cuda:N\"";
const char* kCpuBuildHint =
    "set [experiment] device = \"auto\" or \"cpu\", or build qhost against a CUDA LibTorch (README.md#gpus)";

bool autocast_enabled(c10::DeviceType t) {
#ifdef QTOOL_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(t);
#else
  return t == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(c10::DeviceType t, bool on) {
#ifdef QTOOL_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(t, on);
#else
  if (t == c10::DeviceType::CUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
#endif
}

c10::ScalarType get_autocast_dtype(c10::DeviceType t) {
#ifdef QTOOL_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(t);
#else
  return t == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(c10::DeviceType t, c10::ScalarType dtype) {
#ifdef QTOOL_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(t, dtype);
#else
  if (t == c10::DeviceType::CUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

std::atomic<int64_t> g_host_reads{0};

// HostSyncCounter state: RecordFunction callbacks are plain function pointers.
std::atomic<int64_t> g_sync_count{0};
std::mutex g_sync_mutex;
std::vector<std::string> g_sync_names;

// ATen operations whose result reaches the host: on a GPU each one waits for the
// device. (is_nonzero and allclose read through _local_scalar_dense, counted there.)
bool is_sync_op(const char* name) {
  static const char* const ops[] = {"aten::_local_scalar_dense", "aten::nonzero",   "aten::masked_select",
                                    "aten::unique_consecutive",  "aten::_unique",   "aten::_unique2",
                                    "aten::unique_dim",          "aten::equal",     "aten::nonzero_static"};
  if (!name) return false;
  for (const char* op : ops)
    if (std::strcmp(name, op) == 0) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction& fn) {
  const char* name = fn.name();
  if (is_sync_op(name)) {
    g_sync_count.fetch_add(1);
    std::lock_guard<std::mutex> lock(g_sync_mutex);
    if (g_sync_names.size() < 256) g_sync_names.emplace_back(name);
  }
  return nullptr;
}

}  // namespace

bool built_with_cuda() {
#ifdef QTOOL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::string device_config_problem(const std::string& device_spec, const std::string& precision, std::string* key,
                                  std::string* hint) {
  std::string kind;
  int64_t index = -1;
  if (!parse_spec(device_spec, &kind, &index)) {
    *key = kDeviceKey;
    *hint = kSpecHint;
    return "\"" + device_spec + "\" is not a device";
  }
  if (kind == "cuda" && !built_with_cuda()) {
    *key = kDeviceKey;
    *hint = kCpuBuildHint;
    return "\"" + device_spec + "\" needs CUDA, but this qhost was built against a CPU-only LibTorch";
  }
  if (precision != "fp32" && precision != "bf16" && precision != "fp16") {
    *key = kPrecisionKey;
    *hint = "precision is \"fp32\", \"bf16\" or \"fp16\"";
    return "\"" + precision + "\" is not a precision";
  }
  // fp16 autocast and loss scaling are a GPU feature; on the CPU bf16 is the
  // reduced precision LibTorch supports.
  const bool cpu_only = kind == "cpu" || !built_with_cuda();
  if (precision == "fp16" && cpu_only) {
    *key = kPrecisionKey;
    *hint = "use precision = \"bf16\" on the CPU, or train on a GPU";
    return std::string("fp16 mixed precision needs a CUDA device, and this run trains on the CPU") +
           (built_with_cuda() ? "" : " (CPU-only LibTorch)");
  }
  return {};
}

torch::Device resolve_device(const std::string& spec, std::optional<int64_t> gpu_count) {
  std::string kind;
  int64_t index = -1;
  if (!parse_spec(spec, &kind, &index))
    throw qsdk::Error(qsdk::ErrorCategory::config, kDeviceKey, "\"" + spec + "\" is not a device", kSpecHint);
  if (kind == "cpu") return torch::Device(torch::kCPU);
  const int64_t gpus = gpu_count ? *gpu_count : (built_with_cuda() ? static_cast<int64_t>(torch::cuda::device_count()) : 0);
  if (kind == "auto") return gpus > 0 ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (gpus <= 0) {
    if (!built_with_cuda() && !gpu_count)
      throw qsdk::Error(qsdk::ErrorCategory::config, kDeviceKey,
                        "\"" + spec + "\" needs CUDA, but this qhost was built against a CPU-only LibTorch",
                        kCpuBuildHint);
    throw qsdk::Error(qsdk::ErrorCategory::config, kDeviceKey, "\"" + spec + "\" requested but no GPU is visible",
                      "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES, or set [experiment] device = \"auto\"");
  }
  if (index >= gpus)
    throw qsdk::Error(qsdk::ErrorCategory::config, kDeviceKey,
                      "\"" + spec + "\" requested but " + std::to_string(gpus) + " GPU" + (gpus > 1 ? "s are" : " is") +
                          " visible (cuda:0" + (gpus > 1 ? " to cuda:" + std::to_string(gpus - 1) : "") + ")",
                      "use an index below " + std::to_string(gpus) + ", or check CUDA_VISIBLE_DEVICES");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(std::max<int64_t>(index, 0)));
}

std::string describe_device(const torch::Device& device) {
  if (device.is_cpu()) return "cpu (" + std::to_string(at::get_num_threads()) + " threads)";
  return device.str() + " (" + std::to_string(torch::cuda::device_count()) + " visible)";
}

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::fp32;
  if (text == "bf16") return Precision::bf16;
  if (text == "fp16") return Precision::fp16;
  throw qsdk::Error(qsdk::ErrorCategory::config, kPrecisionKey, "\"" + text + "\" is not a precision",
                    "precision is \"fp32\", \"bf16\" or \"fp16\"");
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
    default: return "fp32";
  }
}

c10::ScalarType autocast_dtype(Precision p) {
  switch (p) {
    case Precision::bf16: return c10::ScalarType::BFloat16;
    case Precision::fp16: return c10::ScalarType::Half;
    default: return c10::ScalarType::Float;
  }
}

AutocastScope::AutocastScope(const torch::Device& device, Precision precision) {
  if (precision == Precision::fp32) return;
  type_ = device.is_cuda() ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  was_enabled_ = autocast_enabled(type_);
  was_dtype_ = get_autocast_dtype(type_);
  set_autocast_dtype(type_, autocast_dtype(precision));
  set_autocast_enabled(type_, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  set_autocast_enabled(type_, was_enabled_);
  set_autocast_dtype(type_, was_dtype_);
  // As torch.autocast's __exit__: the cached low-precision copies of weights
  // are stale once the optimizer has stepped.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

bool autocast_active() { return autocast_enabled(c10::DeviceType::CPU) || autocast_enabled(c10::DeviceType::CUDA); }

torch::Tensor run_in_fp32(const torch::Tensor& x, const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  if (!autocast_active()) return fn(x);
  // The dispatch keys autocast works through, excluded as autocast's own fp32
  // operations do: every op inside fn sees the types it is given.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool reduced = x.defined() && x.is_floating_point() && x.scalar_type() != c10::ScalarType::Float &&
                       x.scalar_type() != c10::ScalarType::Double;
  return fn(reduced ? x.to(c10::ScalarType::Float) : x);
}

LossScaler::LossScaler(bool enabled, double init_scale, double growth_factor, double backoff_factor,
                       int64_t growth_interval)
    : enabled_(enabled),
      scale_(enabled ? init_scale : 1.0),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool LossScaler::unscale_and_check(const std::vector<torch::Tensor>& params) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / scale_;
  torch::Tensor bad;
  for (const auto& p : params) {
    auto g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inv);
    auto b = g.isfinite().logical_not().any();
    bad = bad.defined() ? bad.logical_or(b) : b;
  }
  // One read per step, as GradScaler's step(): skipping needs the answer on the host.
  return !bad.defined() || read_scalar(bad) == 0.0;
}

void LossScaler::update(bool found_inf) {
  if (!enabled_) return;
  if (found_inf) {
    scale_ *= backoff_factor_;
    good_steps_ = 0;
    ++skipped_;
    return;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ *= growth_factor_;
    good_steps_ = 0;
  }
}

void move_module(torch::nn::Module& module, const torch::Device& device, bool channels_last) {
  torch::NoGradGuard no_grad;
  auto move = [&](torch::Tensor& t) {
    if (!t.defined()) return;
    torch::Tensor m = t.to(device);
    if (channels_last && m.dim() == 4) m = m.contiguous(at::MemoryFormat::ChannelsLast);
    // set_data keeps the tensor object, so optimizers and quantizers holding it follow.
    if (!m.is_same(t)) t.set_data(m);
  };
  for (auto& p : module.parameters(true)) move(p);
  for (auto& b : module.buffers(true)) move(b);
}

torch::Tensor batch_to_device(const torch::Tensor& t, const torch::Device& device, bool channels_last) {
  if (!t.defined()) return t;
  torch::Tensor out;
  if (device.is_cuda() && t.device().is_cpu())
    // The pinned block is not reused before the copy has run: LibTorch's host
    // allocator records the copy's stream for non-blocking copies.
    out = (t.is_pinned() ? t : t.pin_memory()).to(device, /*non_blocking=*/true);
  else
    out = t.to(device);
  if (channels_last && out.dim() == 4) out = out.contiguous(at::MemoryFormat::ChannelsLast);
  return out;
}

std::optional<int64_t> peak_device_memory(const torch::Device& device) {
#ifdef QTOOL_WITH_CUDA
  if (device.is_cuda()) {
    // allocated_bytes[0]: StatType::AGGREGATE in every LibTorch version (the
    // enum moved namespaces in 2.x, its first value did not).
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<int64_t>(stats.allocated_bytes[0].peak);
  }
#endif
  (void)device;
  return std::nullopt;
}

void reset_peak_device_memory(const torch::Device& device) {
#ifdef QTOOL_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  (void)device;
}

std::string format_peak_memory(std::optional<int64_t> bytes) {
  if (!bytes) return "n/a";
  return std::to_string(*bytes >> 20) + " MiB";
}

void set_cudnn_benchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }

double read_scalar(const torch::Tensor& t) {
  g_host_reads.fetch_add(1);
  return t.item<double>();
}

std::vector<double> read_scalars(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty()) return {};
  g_host_reads.fetch_add(1);
  std::vector<torch::Tensor> parts;
  parts.reserve(tensors.size());
  for (const auto& t : tensors) parts.push_back(t.detach().reshape({1}).to(torch::kDouble));
  const torch::Tensor host = torch::cat(parts).to(torch::kCPU).contiguous();
  const double* p = host.data_ptr<double>();
  return std::vector<double>(p, p + host.numel());
}

int64_t host_reads() { return g_host_reads.load(); }

HostSyncCounter::HostSyncCounter() {
  reset();
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(&on_op_start).scopes({at::RecordScope::FUNCTION}));
}

HostSyncCounter::~HostSyncCounter() { at::removeCallback(handle_); }

int64_t HostSyncCounter::count() const { return g_sync_count.load(); }

std::vector<std::string> HostSyncCounter::names() const {
  std::lock_guard<std::mutex> lock(g_sync_mutex);
  return g_sync_names;
}

void HostSyncCounter::reset() {
  g_sync_count.store(0);
  std::lock_guard<std::mutex> lock(g_sync_mutex);
  g_sync_names.clear();
}

}  // namespace qhost
