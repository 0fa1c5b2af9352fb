// grad_reducer.hpp - data-parallel gradient averaging: bucketed all-reduce
// started from autograd hooks, so communication overlaps the rest of backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

class Communicator;

/// Averages the gradients of `params` over the ranks after every backward.
///
/// Parameters are packed, in reverse registration order (roughly the order
/// backward produces their gradients), into buckets of about `bucket_bytes`
/// (the first one `first_bucket_bytes`, so communication starts early), as
/// PyTorch's DDP does. A hook on each parameter copies its gradient into the
/// bucket; a full bucket is all-reduced asynchronously while backward goes on.
/// Buckets are launched strictly in order so every rank issues the same
/// collectives in the same order. finish() launches what is left (a parameter
/// without a gradient this step contributes zeros), waits, divides by the
/// world size and writes the averages into `.grad`.
class GradReducer {
 public:
  /// Installs the hooks; `comm` must outlive the reducer.
  GradReducer(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes,
              int64_t first_bucket_bytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  /// Call before backward: clears the bucket state.
  void prepare();
  /// Call after backward: completes the averaging into every parameter's `.grad`.
  void finish();

  /// Number of buckets.
  size_t buckets() const;
  /// Bytes of gradient reduced per step.
  int64_t bytes() const;
  /// Seconds finish() spent waiting for communication in the last step (the part not hidden by backward).
  double last_wait_seconds() const;
  /// "3 buckets, 1.1 MB (0.3 + 0.8)".
  std::string describe() const;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace qhost
