// plugin.cpp - registers dataset/synthetic.
// SPDX-License-Identifier: Apache-2.0
#include "synthetic_dataset.hpp"

#include <qsdk/plugin.hpp>

QSDK_PLUGIN("synthetic", "1.0.0", "Seeded random images and labels") {
  registrar.add_dataset<qplug_synthetic::SyntheticDataset, qplug_synthetic::SyntheticOptions>("synthetic");
}
