#include "platform/cpu_math.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

namespace qhost {

void set_flush_denormal(bool on) {
  at::globalContext().setFlushDenormal(on);
  // The mode lives in each thread's MXCSR. ATen's OpenMP parallel_for (the
  // backend of Debian's and PyTorch's builds) gives each thread one contiguous
  // range, so one index per thread reaches every worker.
  at::parallel_for(0, at::get_num_threads(), 1,
                   [on](int64_t, int64_t) { at::globalContext().setFlushDenormal(on); });
}

}  // namespace qhost
