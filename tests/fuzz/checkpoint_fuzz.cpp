// libFuzzer target: the checkpoint reader (issue 11), through its LibTorch-free
// HDF5 layer (host/checkpoint/checkpoint_h5.hpp) that read_checkpoint() and so
// `qhost eval` use. The input is a file's bytes, written to a temporary file
// (checkpoints are opened by path, as `qhost eval` does) and read three ways:
// strictly against a small model (eval, resume), leniently (train.init_from)
// and without a model under a byte cap (tools). Each must end in a complete
// read or a qsdk::Error; no crash, no leaked HDF5 handle, no read larger than
// the model or the cap. libhdf5 itself is not instrumented: ASan sees its heap
// only through the allocator and the libc calls it makes. Leaks inside libhdf5
// on damaged files are suppressed by tests/fuzz/hdf5_known_leaks.supp, which
// says which and why (the inputs are kept in seeds/checkpoint_known_issues).
// LibTorch-free; built by tools/fuzz.sh (target `checkpoint`), seeds in
// tests/fuzz/seeds/checkpoint (make_checkpoint_seeds.py).
#include "checkpoint/checkpoint_h5.hpp"

#include <qsdk/error.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using qhost::h5::ExpectedModel;
using qhost::h5::ExpectedTensor;

// The model of the seeds (make_checkpoint_seeds.py): a conv, a batch norm, a
// linear layer, an int64 counter, a lazily shaped buffer and a bool mask.
ExpectedModel make_model() {
  ExpectedModel m;
  auto param = [&m](const std::string& name, std::vector<int64_t> sizes) {
    m.tensors[name] = ExpectedTensor{sizes, true, "Float", false};
    m.parameters[name] = sizes;
  };
  param("conv.weight", {4, 3, 3, 3});
  param("bn.weight", {4});
  param("bn.bias", {4});
  param("fc.weight", {10, 4});
  param("fc.bias", {10});
  m.tensors["bn.running_mean"] = ExpectedTensor{{4}, true, "Float", false};
  m.tensors["bn.num_batches_tracked"] = ExpectedTensor{{}, false, "Long", false};
  m.tensors["act.scale"] = ExpectedTensor{{0}, true, "Float", true};
  m.tensors["mask"] = ExpectedTensor{{4}, false, "Bool", false};
  return m;
}

// Everything read_checkpoint() does with the HDF5 layer, minus the tensors.
void read_all(const std::string& path, const qhost::h5::ReadPlanOptions& options) {
  const qhost::h5::CheckpointReader reader(path, options);
  const auto& model = reader.model();
  for (size_t i = 0; i < model.size(); ++i) {
    if (!reader.model_readable()[i]) continue;
    reader.check_stored(model[i], "model");
    std::vector<uint8_t> buffer(static_cast<size_t>(model[i].bytes()));
    reader.read_into(model[i], buffer.data(), buffer.size(), "model");
  }
  for (const auto& e : reader.optimizer()) {
    reader.check_stored(e, "optimizer");
    std::vector<uint8_t> buffer(static_cast<size_t>(e.bytes()));
    reader.read_into(e, buffer.data(), buffer.size(), "optimizer");
  }
  (void)reader.read_metrics();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ExpectedModel model = make_model();
  // QTOOL_FUZZ_VERBOSE=1: print why each read failed (to check the seeds, or a crash input's way in).
  static const bool verbose = std::getenv("QTOOL_FUZZ_VERBOSE") != nullptr;
  // /dev/shm when there is one: HDF5 opens the file a few times per input.
  static const std::string path = std::string(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
                                  "/qtool_checkpoint_fuzz_" + std::to_string(::getpid()) + ".h5";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  const qhost::h5::ReadPlanOptions plans[] = {
      {&model, /*lenient=*/false, /*read_optimizer=*/true, 0},
      {&model, /*lenient=*/true, /*read_optimizer=*/false, 0},
      {nullptr, false, true, /*max_bytes_without_model=*/int64_t{16} << 20},
  };
  for (const auto& plan : plans) {
    try {
      read_all(path, plan);
    } catch (const qsdk::Error& e) {
      if (verbose) std::fprintf(stderr, "%s\n", e.what());
    }
    // Every identifier the reader opened must be closed again, also on errors
    // (a leaked file handle would keep the next input's file from opening).
    if (H5Fget_obj_count(static_cast<hid_t>(H5F_OBJ_ALL), H5F_OBJ_ALL) != 0) std::abort();
  }
  // Hands libhdf5's free lists back, so RSS follows what an input really costs.
  H5garbage_collect();
  return 0;
}
