// checkpoint_meta.hpp - the `/meta` attributes of an HDF5 checkpoint
// (docs/design.md#checkpoints). LibTorch-free, so the HDF5 reading layer
// (checkpoint_h5.hpp) and its fuzz target can use it without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qhost {

/// Version of the on-disk layout; bumped when entries change meaning.
inline constexpr int64_t kCheckpointFormatVersion = 1;

/// The `/meta` attributes of a checkpoint.
struct CheckpointMeta {
  int64_t format_version = kCheckpointFormatVersion;  ///< layout version
  std::string qtool_version;   ///< qhost that wrote it
  std::string sdk_version;     ///< SDK version of that qhost
  std::string torch_version;   ///< LibTorch version of that qhost
  int64_t epoch = 0;           ///< epochs completed (a resumed run starts here)
  int64_t step = 0;            ///< optimizer steps completed
  double best_top1 = 0.0;      ///< best evaluation top-1 so far (percent)
  std::string resolved_toml;   ///< the run's fully resolved configuration
  std::string optimizer_type;  ///< "sgd" / "adam" ("" = no optimizer state)
  std::vector<uint8_t> torch_rng_state;  ///< CPU generator state bytes
  std::string rng_text;        ///< other RNG state (e.g. std::mt19937_64 as text)
  /// What the file is: "" = a training checkpoint; "integer-model" = the
  /// integer model of `qhost export --format qtool` (docs/integer-model.md),
  /// whose layout version is `content_version`.
  std::string content;
  int64_t content_version = 0;  ///< layout version of `content` (0 for a checkpoint)
};

/// Reads only the `/meta` attributes; throws qsdk::Error(checkpoint) as
/// read_checkpoint() does (checkpoint.hpp).
CheckpointMeta read_checkpoint_meta(const std::string& path);

}  // namespace qhost
