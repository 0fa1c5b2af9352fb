#include "platform/allocator.hpp"

#include <malloc.h>

#include <cstdlib>

namespace qhost {

void tune_allocator() {
  const char* keep = std::getenv("QTOOL_MALLOC_DEFAULT");
  if (keep && *keep && *keep != '0') return;
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

}  // namespace qhost
