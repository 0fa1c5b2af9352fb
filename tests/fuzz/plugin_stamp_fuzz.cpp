// libFuzzer target: the plugin stamp reader (issue 11). The input is a whole
// plugin file; read_stamp_note() parses its ELF section headers before any
// dlopen, so it must return a note or throw qsdk::Error on anything, never read
// out of bounds or allocate without limit. Build (no LibTorch):
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ihost -Isdk/include \
//     tests/fuzz/plugin_stamp_fuzz.cpp host/plugins/plugin_stamp.cpp sdk/src/error.cpp -o build/plugin_stamp_fuzz
//   build/plugin_stamp_fuzz -max_total_time=60 -rss_limit_mb=2048 <folder with a few libqplug_*.so>
#include "plugins/plugin_stamp.hpp"

#include <qsdk/error.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader works on files (pread): one scratch file per fuzzing process.
  static const std::string path = "/tmp/plugin_stamp_fuzz_" + std::to_string(::getpid()) + ".so";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  try {
    qtool_plugin_stamp_note note = qhost::read_stamp_note(path);
    // A returned note has terminated text.
    if (std::string(note.name).size() >= sizeof note.name) std::abort();
  } catch (const qsdk::Error&) {
  }
  return 0;
}
