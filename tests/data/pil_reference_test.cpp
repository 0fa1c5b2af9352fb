// pil_reference_test.cpp - the imagefolder eval pipeline against PIL, i.e.
// torchvision's Resize(256) + CenterCrop(224) + ToTensor + Normalize on PIL
// images, computed by /usr/bin/python3 (skipped when PIL is not there).
// SPDX-License-Identifier: Apache-2.0
#include "plugin_harness.hpp"
#include "sample_files.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace {

const char* kReference = R"(
import sys
import numpy as np
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
w, h = img.size
if w <= h:
    ow, oh = 256, int(256 * h / w)
else:
    oh, ow = 256, int(256 * w / h)
img = img.resize((ow, oh), Image.BILINEAR)
top, left = int(round((oh - 224) / 2.0)), int(round((ow - 224) / 2.0))
img = img.crop((left, top, left + 224, top + 224))
a = np.asarray(img, dtype=np.float32) / 255.0
a = (a - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
a.transpose(2, 0, 1).astype("<f4").tofile(sys.argv[2])
)";

}  // namespace

TEST(PilReference, EvalResizeCenterCropMatchesTorchvisionOnPil) {
  if (std::system("/usr/bin/python3 -c 'import PIL, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with PIL and numpy not available";
  qtool_samples::TempDir dir("pil");
  // Odd sizes exercise the half-even rounding of the centre crop.
  for (auto [w, h] : {std::pair<int, int>{301, 203}, {190, 333}, {640, 480}}) {
    const std::string name = "img" + std::to_string(w) + ".png";
    const auto png = qtool_samples::encode_png(qtool_samples::smooth_rgb(w, h, w), w, h);
    qtool_samples::write_bytes(dir / ("val/a/" + name), png);
    qtool_samples::write_bytes(dir / "ref.py", std::vector<uint8_t>(kReference, kReference + std::strlen(kReference)));
    const std::string cmd =
        "/usr/bin/python3 " + (dir / "ref.py") + " " + (dir / ("val/a/" + name)) + " " + (dir / "ref.f32");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(dir / "ref.f32", std::ios::binary);
    std::vector<float> ref(3 * 224 * 224);
    f.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * sizeof(float)));
    ASSERT_TRUE(f.good());
    auto val = qdata_test::make_dataset("imagefolder", "imagefolder", {{"root", dir.path()}}, false);
    ASSERT_EQ(val->size(), 1);
    std::mt19937_64 rng(0);
    const auto mine = val->get(0, rng).image;
    const auto expected = torch::from_blob(ref.data(), {3, 224, 224}, torch::kFloat32);
    const double level = 1.0 / 255.0 / 0.224;  // one grey level after normalization
    const auto diff = (mine - expected).abs();
    EXPECT_LE(diff.max().item<double>(), 1.01 * level * 2) << w << "x" << h;
    EXPECT_LE(diff.mean().item<double>(), 0.5 * level) << w << "x" << h;
    std::filesystem::remove(dir / ("val/a/" + name));
  }
}
