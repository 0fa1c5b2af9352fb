// metrics.hpp - loss/accuracy meters, metrics.jsonl records and the live
// progress line of a run.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace qhost {

/// A weighted running mean (the reference's AverageMeter).
class Meter {
 public:
  /// Adds `value` with weight `n` (e.g. the batch size).
  void add(double value, int64_t n = 1) {
    sum_ += value * static_cast<double>(n);
    count_ += n;
  }
  /// The mean so far (0 when empty).
  double mean() const { return count_ > 0 ? sum_ / static_cast<double>(count_) : 0.0; }
  /// Total weight.
  int64_t count() const { return count_; }
  /// Forgets everything.
  void reset() { *this = Meter(); }

 private:
  double sum_ = 0.0;
  int64_t count_ = 0;
};

/// Number of samples whose label is among the `k` largest logits, as a 0-dim
/// int64 tensor on the logits' device (no host read).
torch::Tensor topk_correct_count(const torch::Tensor& logits, const torch::Tensor& target, int64_t k);
/// Number of samples whose label is among the `k` largest logits (reads it to the host).
int64_t topk_correct(const torch::Tensor& logits, const torch::Tensor& target, int64_t k);

/// One flat JSON object, built field by field (numbers, strings, booleans).
class JsonRecord {
 public:
  /// Adds a number (non-finite values become null).
  JsonRecord& num(const std::string& key, double value);
  /// Adds an integer.
  JsonRecord& integer(const std::string& key, int64_t value);
  /// Adds a string (escaped).
  JsonRecord& str(const std::string& key, const std::string& value);
  /// The object text, `{"a": 1, ...}`.
  std::string text() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

/// Escapes a string for JSON.
std::string json_escape(const std::string& s);

/// Appends records to `metrics.jsonl` (flushed per line) and keeps the
/// history for checkpoints.
class MetricsLog {
 public:
  /// Opens `path`; `keep` = append to an existing file instead of starting a
  /// new one. `history` (from a checkpoint) seeds the in-memory history and,
  /// unless `keep`, is written first.
  MetricsLog(const std::string& path, bool keep, std::string history = {});
  /// Writes one line.
  void write(const JsonRecord& record);
  /// Every line written so far in this run (and the seeded history).
  const std::string& history() const { return history_; }

 private:
  std::ofstream out_;
  std::string history_;
};

/// A single console line rewritten in place (when stderr is a terminal) with
/// epoch, step, loss, top-1, img/s and ETA.
class ProgressLine {
 public:
  ProgressLine();
  /// Redraws at most a few times a second.
  void update(const std::string& text, bool force = false);
  /// Ends the line so later output starts on a fresh one.
  void finish();
  /// True when stderr is a terminal (otherwise update() prints nothing).
  bool live() const { return live_; }

 private:
  bool live_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

/// "1h02m", "3m07s", "12s".
std::string format_duration(double seconds);

}  // namespace qhost
