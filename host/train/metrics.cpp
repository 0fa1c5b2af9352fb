#include "train/metrics.hpp"

#include <qsdk/error.hpp>

#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace qhost {

torch::Tensor topk_correct_count(const torch::Tensor& logits, const torch::Tensor& target, int64_t k) {
  k = std::min<int64_t>(k, logits.size(1));
  const auto top = std::get<1>(logits.topk(k, 1, true, true));
  return top.eq(target.view({-1, 1})).any(1).sum();
}

int64_t topk_correct(const torch::Tensor& logits, const torch::Tensor& target, int64_t k) {
  return topk_correct_count(logits, target, k).item<int64_t>();
}

std::string json_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

JsonRecord& JsonRecord::num(const std::string& key, double value) {
  if (!std::isfinite(value)) {
    fields_.emplace_back(key, "null");
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.8g", value);
  fields_.emplace_back(key, buf);
  return *this;
}
JsonRecord& JsonRecord::integer(const std::string& key, int64_t value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}
JsonRecord& JsonRecord::str(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, "\"" + json_escape(value) + "\"");
  return *this;
}
std::string JsonRecord::text() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i > 0) out += ", ";
    out += "\"" + json_escape(fields_[i].first) + "\": " + fields_[i].second;
  }
  return out + "}";
}

MetricsLog::MetricsLog(const std::string& path, bool keep, std::string history) : history_(std::move(history)) {
  out_.open(path, keep ? std::ios::app : std::ios::trunc);
  if (!out_) throw qsdk::Error(qsdk::ErrorCategory::runtime, path, "cannot open the metrics file for writing");
  // A resumed run rewrites the file from the checkpoint's history, dropping
  // lines of epochs that were logged after that checkpoint was written.
  if (!keep && !history_.empty()) out_ << history_ << std::flush;
}

void MetricsLog::write(const JsonRecord& record) {
  const std::string line = record.text() + "\n";
  out_ << line;
  out_.flush();
  history_ += line;
}

ProgressLine::ProgressLine() : live_(::isatty(STDERR_FILENO) == 1) {}

void ProgressLine::update(const std::string& text, bool force) {
  if (!live_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  drawn_ = true;
  std::cerr << "\r\033[K" << text << std::flush;
}

void ProgressLine::finish() {
  if (live_ && drawn_) std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                               static_cast<long long>((s % 3600) / 60));
  else if (s >= 60) std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                                  static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  return buf;
}

}  // namespace qhost
