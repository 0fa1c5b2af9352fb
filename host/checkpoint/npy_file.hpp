// npy_file.hpp - writing a tensor as a NumPy .npy file.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace qhost {

/// Writes `t` (float32 or int64, any shape; copied to the CPU) as a NumPy
/// .npy file. Throws qsdk::Error (runtime) for another dtype or a failed write.
void write_npy(const std::string& path, const at::Tensor& t);

}  // namespace qhost
