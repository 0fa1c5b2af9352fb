// libFuzzer target: TOML experiment loading (issue 11). The input is an
// experiment's text; Config::from_string must either load it or throw
// qsdk::Error (never crash, overflow the stack or use unbounded memory), and a
// loaded tree must survive the resolved.toml round trip: to_toml_text() reads
// back to the same tree.
//
// Section validation against plugin schemas (Config::check) needs the registry
// and LibTorch, so it is not in this target; the host sections' TOML is.
// Build (no LibTorch; join/did_you_mean come from this file instead of
// errors.cpp, which needs c10):
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -DQTOOL_VERSION='"fuzz"' \
//     -Ihost -Isdk/include tests/fuzz/config_fuzz.cpp host/config/config.cpp host/config/config_writer.cpp \
//     host/config/sections.cpp sdk/src/value.cpp sdk/src/schema.cpp sdk/src/error.cpp -o build/config_fuzz
//   build/config_fuzz -max_total_time=60 -rss_limit_mb=2048 -max_len=65536 tests/cli/data experiments
#include "config/config.hpp"
#include "platform/errors.hpp"

#include <qsdk/error.hpp>
#include <qsdk/kind.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace qhost {
// Stand-ins for errors.cpp (which includes c10 for report_errors).
std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}
std::string did_you_mean(const std::string&, const std::vector<std::string>&) { return ""; }
}  // namespace qhost

namespace qsdk {
// Stand-ins for interfaces.cpp (which needs LibTorch); sections.cpp names kinds.
const char* to_string(Kind) { return "kind"; }
}  // namespace qsdk

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // `extends` would read files of this machine: not what is being fuzzed.
  if (text.find("extends") != std::string::npos) return 0;
  qhost::Config config;
  try {
    config = qhost::Config::from_string(text, "fuzz.toml");
  } catch (const qsdk::Error&) {
    return 0;  // a clean, located refusal
  }
  const std::string resolved = qhost::to_toml_text(config.root());
  try {
    const qhost::Config again = qhost::Config::from_string(resolved, "resolved.toml");
    // NaN != NaN, so compare the text of the trees, not the trees.
    if (qhost::to_toml_text(again.root()) != resolved) std::abort();
  } catch (const qsdk::Error& e) {
    std::fprintf(stderr, "resolved.toml does not read back: %s\n%s\n", e.what(), resolved.c_str());
    std::abort();
  }
  return 0;
}
