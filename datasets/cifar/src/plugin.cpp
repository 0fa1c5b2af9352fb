// plugin.cpp - registers dataset/cifar.
// SPDX-License-Identifier: Apache-2.0
#include "cifar_dataset.hpp"

#include <qsdk/plugin.hpp>

QSDK_PLUGIN("cifar", "1.0.0", "CIFAR-10 / CIFAR-100 binary files with the reference's transforms") {
  registrar.add_dataset<qplug_cifar::CifarDataset, qplug_cifar::CifarOptions>("cifar");
}
