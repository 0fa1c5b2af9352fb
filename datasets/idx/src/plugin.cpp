// plugin.cpp - registers dataset/idx.
// SPDX-License-Identifier: Apache-2.0
#include "idx_dataset.hpp"

#include <qsdk/plugin.hpp>

QSDK_PLUGIN("idx", "1.0.0", "MNIST-style IDX files (raw or gzip)") {
  registrar.add_dataset<qplug_idx::IdxDataset, qplug_idx::IdxOptions>("idx");
}
