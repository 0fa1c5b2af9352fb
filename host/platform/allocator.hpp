// allocator.hpp - glibc malloc settings for training processes.
#pragma once

namespace qhost {

/// Keeps large tensor buffers in the heap instead of fresh mmap()s.
///
/// glibc serves every allocation above 128 KiB-32 MiB (adaptive) with its own
/// mmap() and returns it on free, so each training step page-faults its
/// activations in again; with two threads the faults also contend on the
/// process's memory map. Raising the mmap threshold to its maximum (32 MiB on
/// 64-bit) and the trim threshold to 1 GiB lets freed buffers be reused, which
/// is what PyTorch gets from jemalloc/tcmalloc. Measured on ResNet-20 b128,
/// 2 threads: FP step -1 %, LSQ 2/2 step -9 %. QTOOL_MALLOC_DEFAULT=1 keeps
/// glibc's defaults. Call once at start-up, before tensors are allocated.
void tune_allocator();

}  // namespace qhost
