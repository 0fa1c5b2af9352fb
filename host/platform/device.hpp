// device.hpp - where a run trains and in which precision (docs/training.md#devices-and-precision):
// `[experiment] device`, `[train] precision`, autocast scopes, fp16 loss scaling,
// module moves and peak device memory. Everything here compiles against a CPU
// LibTorch 1.13 and a CUDA LibTorch 2.x; CUDA-only calls sit behind QTOOL_WITH_CUDA.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace qhost {

/// True when this qhost was built against a LibTorch with CUDA (QTOOL_WITH_CUDA).
bool built_with_cuda();

/// What `[experiment] device` / `[train] precision` say is wrong, checked
/// without touching a GPU (for `qhost check`): an empty string when fine.
/// `device_spec` is "auto", "cpu", "cuda" or "cuda:N"; `precision` "fp32",
/// "bf16" or "fp16". `*key` names the offending key ("experiment.device" or
/// "train.precision") and `*hint` how to fix it.
std::string device_config_problem(const std::string& device_spec, const std::string& precision, std::string* key,
                                  std::string* hint);

/// The device a run uses: "auto" is cuda:0 when LibTorch has CUDA and a GPU
/// is visible, else the CPU. Throws a config error naming experiment.device
/// for a bad spec, CUDA without a CUDA LibTorch or GPU, or an index that is
/// not visible. `gpu_count` overrides the visible GPU count (tests).
torch::Device resolve_device(const std::string& spec, std::optional<int64_t> gpu_count = std::nullopt);

/// "cpu (N threads)" / "cuda:0 (NVIDIA H100 ...)" for the log.
std::string describe_device(const torch::Device& device);

/// Training precision (`[train] precision`).
enum class Precision { fp32, bf16, fp16 };
/// Parses "fp32" | "bf16" | "fp16" (anything else: fp32 is never assumed, it throws).
Precision parse_precision(const std::string& text);
/// "fp32" | "bf16" | "fp16".
const char* to_string(Precision p);
/// The autocast dtype of a precision (Float for fp32).
c10::ScalarType autocast_dtype(Precision p);

/// Mixed precision for one forward pass: enables LibTorch autocast for the
/// device type with the precision's dtype and restores the previous state
/// (clearing the autocast weight-cast cache, which would otherwise keep casts of
/// weights the optimizer has since changed). A no-op for fp32.
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Float;
};

/// True while autocast is on for CPU or CUDA on this thread.
bool autocast_active();

/// Runs a quantizer in float32 inside an autocast region: casts a reduced-
/// precision floating input to float32 and excludes autocast while `fn` runs,
/// so the quantizer's arithmetic (and every op it calls) is exactly what an
/// fp32 run computes. Outside autocast it calls `fn(x)` unchanged.
torch::Tensor run_in_fp32(const torch::Tensor& x, const std::function<torch::Tensor(const torch::Tensor&)>& fn);

/// Dynamic loss scaling for fp16 (PyTorch's GradScaler rules): the loss is
/// multiplied by `scale()` before backward; `unscale_and_check` divides the
/// gradients by it and reports whether all are finite; `update` halves the
/// scale after an overflow and doubles it after `growth_interval` clean steps.
/// Deciding to skip a step reads one flag from the device (as GradScaler does).
class LossScaler {
 public:
  /// `enabled` false: scale 1, nothing is checked, every step is taken.
  explicit LossScaler(bool enabled, double init_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5, int64_t growth_interval = 2000);
  /// Whether scaling is on.
  bool enabled() const { return enabled_; }
  /// The current scale.
  double scale() const { return scale_; }
  /// Multiplies the loss by the scale (identity when disabled).
  torch::Tensor scale_loss(const torch::Tensor& loss) const;
  /// Divides every defined gradient by the scale; returns true when they are all
  /// finite (the optimizer step may be taken). Always true when disabled.
  bool unscale_and_check(const std::vector<torch::Tensor>& params);
  /// Adjusts the scale after a step (`found_inf` = the step was skipped).
  void update(bool found_inf);
  /// Steps skipped for overflow so far.
  int64_t skipped() const { return skipped_; }

 private:
  bool enabled_;
  double scale_;
  double growth_factor_, backoff_factor_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
};

/// Moves every parameter and buffer of `module` to `device` in place (the
/// tensors keep their identity, so an optimizer holding them stays valid); with
/// `channels_last`, 4-D parameters and buffers also take the NHWC layout.
void move_module(torch::nn::Module& module, const torch::Device& device, bool channels_last = false);

/// A loader batch tensor on `device` without waiting for it: to a GPU through
/// pinned host memory with an asynchronous copy (a copy from pageable memory
/// first synchronises the stream); in NHWC when `channels_last` and 4-D.
torch::Tensor batch_to_device(const torch::Tensor& t, const torch::Device& device, bool channels_last = false);

/// The largest device memory allocated since the last reset, in bytes;
/// nullopt on the CPU (or a LibTorch without CUDA).
std::optional<int64_t> peak_device_memory(const torch::Device& device);
/// Starts a new peak-memory window (no-op on the CPU).
void reset_peak_device_memory(const torch::Device& device);
/// "1234 MiB" or "n/a".
std::string format_peak_memory(std::optional<int64_t> bytes);

/// Sets cuDNN's autotuner flag (a no-op for CPU convolutions).
void set_cudnn_benchmark(bool on);

/// Reads a one-element tensor as a double on the host. On a device this waits
/// for the device: the trainer calls it only once per log interval. Every call
/// is counted (host_reads()), a seam for tests.
double read_scalar(const torch::Tensor& t);
/// Reads several one-element tensors of one device to the host in a single
/// transfer (one synchronisation on a device), as doubles; counted once.
std::vector<double> read_scalars(const std::vector<torch::Tensor>& tensors);
/// Calls of read_scalar() and read_scalars() so far in this process.
int64_t host_reads();

/// Counts, while alive, the ATen operations on any thread that copy a value
/// from a device to the host and so synchronise with it (item(), `if (tensor)`,
/// nonzero, masked_select, unique, ...), through LibTorch's RecordFunction
/// observers. On the CPU nothing waits, but the same calls would on a GPU, so a
/// CPU test that sees none shows a step has no host synchronisation.
class HostSyncCounter {
 public:
  HostSyncCounter();
  ~HostSyncCounter();
  HostSyncCounter(const HostSyncCounter&) = delete;
  HostSyncCounter& operator=(const HostSyncCounter&) = delete;
  /// Synchronising operations seen so far.
  int64_t count() const;
  /// Their names, in order (for failure messages).
  std::vector<std::string> names() const;
  /// Forgets what was counted.
  void reset();

 private:
  uint64_t handle_ = 0;
};

}  // namespace qhost
