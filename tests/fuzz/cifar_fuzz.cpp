// libFuzzer target: the CIFAR binary record reader of the cifar dataset
// plugin (issue 11), datasets/cifar/src/cifar_records.cpp, as
// CifarDataset reads each file. The input is one file's bytes, decoded as
// CIFAR-10, CIFAR-100 fine and CIFAR-100 coarse; each must decode whole
// records with labels in range or throw qsdk::Error, never read past the
// input. LibTorch-free; built by tools/fuzz.sh (target `cifar`), seeds in
// tests/fuzz/seeds/cifar (two-record CIFAR-10 and CIFAR-100 files).
#include "cifar_records.hpp"

#include <qsdk/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using qplug_cifar::CifarFormat;
  for (const CifarFormat format : {CifarFormat{false, false}, CifarFormat{true, false}, CifarFormat{true, true}}) {
    // A record already in the lists, as when a later data_batch_N.bin is appended.
    std::vector<int64_t> labels(1, 0);
    std::vector<uint8_t> pixels(qplug_cifar::kCifarPixels, 0);
    try {
      qplug_cifar::decode_cifar_records(data, size, format, "fuzz.bin", labels, pixels);
    } catch (const qsdk::Error&) {
      continue;
    }
    // The reader's own promises: whole records, labels within the class count,
    // the planar red plane moved to the interleaved layout.
    const size_t n = size / static_cast<size_t>(format.record_bytes());
    if (labels.size() != 1 + n || pixels.size() != labels.size() * qplug_cifar::kCifarPixels) std::abort();
    const int64_t classes = format.cifar100 ? (format.coarse ? 20 : 100) : 10;
    for (size_t i = 1; i < labels.size(); ++i) {
      if (labels[i] < 0 || labels[i] >= classes) std::abort();
      const uint8_t* rec = data + (i - 1) * static_cast<size_t>(format.record_bytes());
      if (pixels[i * qplug_cifar::kCifarPixels] != rec[format.label_bytes()]) std::abort();
    }
  }
  return 0;
}
