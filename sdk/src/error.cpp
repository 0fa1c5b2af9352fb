// Out-of-line members of qsdk::Error: its key function lives here so typeinfo
// is unique across plugins loaded with RTLD_LOCAL.
#include <qsdk/error.hpp>

namespace qsdk {
namespace {
std::string compose(const std::string& place, const std::string& message, const std::string& hint) {
  std::string out = place.empty() ? message : place + ": " + message;
  if (!hint.empty()) out += " (hint: " + hint + ")";
  return out;
}
}  // namespace

const char* to_string(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::usage: return "usage";
    case ErrorCategory::config: return "config";
    case ErrorCategory::plugin: return "plugin";
    case ErrorCategory::data: return "data";
    case ErrorCategory::checkpoint: return "checkpoint";
    case ErrorCategory::runtime: return "runtime";
  }
  return "unknown";
}

Error::Error(ErrorCategory category, std::string place, std::string message, std::string hint)
    : std::runtime_error(compose(place, message, hint)),
      category_(category),
      place_(std::move(place)),
      message_(std::move(message)),
      hint_(std::move(hint)) {}

Error::~Error() = default;

void config_error(const std::string& key, const std::string& message, const std::string& hint) {
  throw Error(ErrorCategory::config, key, message, hint);
}

}  // namespace qsdk
