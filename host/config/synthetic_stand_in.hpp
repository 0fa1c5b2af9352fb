// synthetic_stand_in.hpp - `qhost run/check --synthetic`: any experiment on
// seeded random data of its own sample shape and class count.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <qsdk/value.hpp>

#include <string>

namespace qhost {

/// What dataset/synthetic must produce to stand in for a reader.
struct SyntheticStandIn {
  qsdk::Table data;          ///< the new [data] table (type = "synthetic")
  std::string description;   ///< e.g. "3x224x224, 1000 classes (ImageNet's, assumed for imagefolder)"
};

/// The [data] table that replaces `data` (the experiment's, after --set) by
/// dataset/synthetic with the same sample shape, class count and loader keys:
/// - loader keys (batch_size, eval_batch_size, workers, prefetch, drop_last)
///   and keys dataset/synthetic has itself (num_samples, num_classes,
///   channels, height, width, signal, seed) are kept;
/// - channels: the length of `mean` (the normalisation has one entry per
///   channel), else 3;
/// - height and width: `size` (the side after cropping) when > 0; for a
///   reader whose native side is fixed (idx: 28, cifar: 32) that side;
/// - classes: `num_classes`; else cifar's `variant`/`label` (10, 100 or 20);
///   else 1000 for imagefolder (ImageNet's, assumed and said);
/// - num_samples: 4 x the larger batch size, so every split has full batches.
/// Throws qsdk::Error(config) naming `where` and the missing key when the
/// shape or class count cannot be told without the data.
SyntheticStandIn synthetic_stand_in(const qsdk::Table& data, const std::string& where);

}  // namespace qhost
