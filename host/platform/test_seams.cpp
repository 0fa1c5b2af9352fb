#include "platform/test_seams.hpp"

#include <cstdlib>

namespace qhost::test_seams {

#if defined(QTOOL_TEST_SEAMS) && QTOOL_TEST_SEAMS

bool enabled() { return true; }

std::optional<std::string> value(const char* name) {
  const std::string var = std::string("QTOOL_TEST_") + name;
  const char* v = std::getenv(var.c_str());
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

#else

// Release build: the hooks do not exist (not even their names are in the binary).
bool enabled() { return false; }

std::optional<std::string> value(const char*) { return std::nullopt; }

#endif

int64_t integer(const char* name, int64_t fallback) {
  const auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(v->c_str(), &end, 10);
  return end == v->c_str() ? fallback : static_cast<int64_t>(n);
}

}  // namespace qhost::test_seams
