// plugin.cpp - registers dataset/imagefolder.
// SPDX-License-Identifier: Apache-2.0
#include "imagefolder_dataset.hpp"

#include <qsdk/plugin.hpp>

QSDK_PLUGIN("imagefolder", "1.0.0", "ImageNet-layout JPEG/PNG folders with the reference's transforms") {
  registrar.add_dataset<qplug_imagefolder::ImageFolderDataset, qplug_imagefolder::ImageFolderOptions>("imagefolder");
}
