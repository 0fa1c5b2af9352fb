// synthetic_dataset.cpp - see synthetic_dataset.hpp.
// SPDX-License-Identifier: Apache-2.0
#include "synthetic_dataset.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <cmath>

namespace qplug_synthetic {

qsdk::Schema<SyntheticOptions> SyntheticOptions::schema() {
  qsdk::Schema<SyntheticOptions> s("seeded random images and labels (pipeline tests, smoke runs)");
  s.field("num_samples", &SyntheticOptions::num_samples, "number of samples").at_least(1);
  s.field("num_classes", &SyntheticOptions::num_classes, "number of classes").at_least(1);
  s.field("channels", &SyntheticOptions::channels, "image channels").range(1, 64);
  s.field("height", &SyntheticOptions::height, "image height").range(1, 4096);
  s.field("width", &SyntheticOptions::width, "image width").range(1, 4096);
  s.field("signal", &SyntheticOptions::signal,
          "scale of the per-class channel offset added to the noise (0 = unlearnable noise)")
      .at_least(0);
  s.field("seed", &SyntheticOptions::seed, "data seed; -1 = the experiment seed").at_least(-1);
  return s;
}

namespace {

// splitmix64 finalizer: decorrelates consecutive seeds.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double u01(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace

SyntheticDataset::SyntheticDataset(SyntheticOptions options, const qsdk::DatasetContext& context) : options_(options) {
  const uint64_t base = options_.seed >= 0 ? static_cast<uint64_t>(options_.seed) : context.seed;
  seed_ = mix(mix(base) ^ (context.train ? 0x747261696eull : 0x6576616cull));
  // Class offsets depend on the base seed only, so both splits share classes.
  std::mt19937_64 g(mix(base ^ 0x636c617373ull));
  class_offsets_.resize(static_cast<size_t>(options_.num_classes * options_.channels));
  for (auto& v : class_offsets_) v = static_cast<float>(options_.signal * (2.0 * u01(g) - 1.0));
}

qsdk::Example SyntheticDataset::get(int64_t index, std::mt19937_64& rng) const {
  (void)rng;  // deterministic per index: no augmentation
  if (index < 0 || index >= options_.num_samples) throw std::out_of_range("synthetic: index " + std::to_string(index));
  std::mt19937_64 g(mix(seed_ ^ mix(static_cast<uint64_t>(index))));
  qsdk::Example ex;
  ex.label = static_cast<int64_t>(g() % static_cast<uint64_t>(options_.num_classes));
  const int64_t plane = options_.height * options_.width;
  ex.image = torch::empty({options_.channels, options_.height, options_.width}, torch::kFloat32);
  float* d = ex.image.data_ptr<float>();
  for (int64_t c = 0; c < options_.channels; ++c) {
    const float offset = class_offsets_[static_cast<size_t>(ex.label * options_.channels + c)];
    float* p = d + c * plane;
    // Box-Muller, two normals per pair of uniforms.
    for (int64_t i = 0; i < plane; i += 2) {
      const double r = std::sqrt(-2.0 * std::log(1.0 - u01(g)));
      const double t = 6.283185307179586 * u01(g);
      p[i] = static_cast<float>(r * std::cos(t)) + offset;
      if (i + 1 < plane) p[i + 1] = static_cast<float>(r * std::sin(t)) + offset;
    }
  }
  return ex;
}

std::string SyntheticDataset::describe() const {
  return "synthetic: " + std::to_string(options_.num_samples) + " samples " + std::to_string(options_.channels) + "x" +
         std::to_string(options_.height) + "x" + std::to_string(options_.width) + ", " +
         std::to_string(options_.num_classes) + " classes";
}

}  // namespace qplug_synthetic
