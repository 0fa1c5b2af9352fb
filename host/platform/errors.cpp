#include "platform/errors.hpp"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <new>

namespace qhost {

size_t edit_distance(const std::string& a_in, const std::string& b_in) {
  std::string a = a_in, b = b_in;
  for (auto& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : b) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  // A third of the word (at least 1, at most 3) catches typos without
  // suggesting unrelated short names.
  const size_t limit = std::max<size_t>(1, std::min<size_t>(3, word.size() / 3 + 1));
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto m = closest_match(word, candidates);
  return m ? "did you mean '" + *m + "'?" : "";
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

int exit_code(qsdk::ErrorCategory category) { return static_cast<int>(category); }

int report_errors(int (*body)(int, char**), int argc, char** argv) {
  auto print = [](const char* category, const std::string& text) {
    std::cerr << "error[" << category << "]: " << text << std::endl;
  };
  try {
    return body(argc, argv);
  } catch (const qsdk::Error& e) {
    print(qsdk::to_string(e.category()), e.what());
    return exit_code(e.category());
  } catch (const c10::Error& e) {
    print("runtime", std::string("LibTorch: ") + e.what_without_backtrace());
    return exit_code(qsdk::ErrorCategory::runtime);
  } catch (const std::bad_alloc&) {
    print("runtime", "out of memory");
    return exit_code(qsdk::ErrorCategory::runtime);
  } catch (const std::exception& e) {
    print("runtime", e.what());
    return exit_code(qsdk::ErrorCategory::runtime);
  } catch (...) {
    print("runtime", "unknown exception (not derived from std::exception)");
    return exit_code(qsdk::ErrorCategory::runtime);
  }
}

}  // namespace qhost
