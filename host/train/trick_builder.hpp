// trick_builder.hpp - an experiment's [[trick]] entries (mixup, label
// smoothing, KD, weight normalisation, ...), in TOML order.
#pragma once

#include <qsdk/trick.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qhost {

class Config;
class LayerFactory;
class Registry;

/// What build_tricks() makes.
struct TrickParts {
  std::vector<std::shared_ptr<qsdk::Trick>> tricks;  ///< in TOML order
  std::vector<std::string> names;                    ///< "trick/mixup", ... for messages
};

/// Makes every `[[trick]]` entry; their weight transforms are added to
/// `factory` (so they reach the quantized layers built after this call). A
/// trick that loads a network (KD's teacher) builds it through its own
/// quantizer-free layer factory and reads its checkpoint (NaN/inf allowed
/// only with `allow_nonfinite`; absent under --synthetic). Errors name the
/// `trick[i]` entry and its file:line.
TrickParts build_tricks(const Config& config, Registry& registry, LayerFactory& factory, int64_t num_classes,
                        const std::vector<int64_t>& sample_shape, bool allow_nonfinite);

}  // namespace qhost
