// libFuzzer target: the IDX reader (raw and gzip) of the idx dataset plugin
// (issue 11). The input is an IDX file's bytes, written to a temporary file
// (read_idx reads a path); read_idx must return an array whose payload is
// the product of its dims or throw qsdk::Error, never crash, overflow or
// allocate past `max_bytes` (a gzip bomb stops there). LibTorch-free; built
// by tools/fuzz.sh (target `idx`).
#include "idx_file.hpp"

#include <qsdk/error.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/qtool_idx_fuzz_" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  try {
    const auto a = qplug_idx::read_idx(path, 0, uint64_t{16} << 20);  // 16 MiB cap
    const int64_t n = std::accumulate(a.dims.begin(), a.dims.end(), int64_t{1}, std::multiplies<int64_t>());
    if (static_cast<uint64_t>(n) != a.data.size()) std::abort();  // the reader's own promise
  } catch (const qsdk::Error&) {
  }
  return 0;
}
