// A tensor as a NumPy .npy file (format version 1.0): what `qhost eval
// --dump-logits` and `qhost export --reference` write for Python to read.
#include "checkpoint/npy_file.hpp"

#include <qsdk/error.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <fstream>

namespace qhost {

using qsdk::ErrorCategory;

void write_npy(const std::string& path, const at::Tensor& t_in) {
  const at::Tensor t = t_in.detach().cpu().contiguous();
  const char* descr = t.scalar_type() == at::kFloat ? "<f4" : t.scalar_type() == at::kLong ? "<i8" : nullptr;
  if (!descr) throw qsdk::Error(ErrorCategory::runtime, path, "write_npy: only float32 and int64 tensors");
  // A Python tuple: "()", "(4,)", "(4, 3, 8, 8)".
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? ", " : "") + std::to_string(t.size(i));
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
  if (!out.flush()) throw qsdk::Error(ErrorCategory::runtime, path, "cannot write the file");
}

}  // namespace qhost
