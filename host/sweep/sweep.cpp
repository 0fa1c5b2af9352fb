// `qhost sweep`: grid points run as child `qhost run` processes, so a crash
// in one point cannot take the sweep down; finished points are skipped on a
// rerun.
#include "sweep/sweep.hpp"

#include "config/config.hpp"
#include "platform/errors.hpp"
#include "sweep/run_results.hpp"

#include <qsdk/error.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace qhost {
namespace {

namespace fs = std::filesystem;
using qsdk::Table;
using qsdk::Value;

const char* kDoneMarker = "sweep_done";

// A value as it appears in a folder name: strings bare, tables as their type
// and then their other options.
std::string value_text(const Value& v) {
  if (v.type() == Value::Type::string) return v.as_string();
  if (v.type() != Value::Type::table) return v.to_string();
  std::string out;
  auto type = v.as_table().find("type");
  if (type != v.as_table().end()) out = value_text(type->second);
  for (const auto& [k, e] : v.as_table())
    if (k != "type") out += (out.empty() ? "" : ",") + k + "=" + value_text(e);
  return out;
}

std::string safe(const std::string& s) {
  std::string out;
  for (char c : s)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '+' || c == '=')
               ? c
               : '_';
  return out;
}

// The last "error[...]" report of a child's log with its indented detail
// lines (the config problems), else its last line.
std::string last_error_line(const std::string& log) {
  std::ifstream in(log);
  std::string line, last, error;
  bool in_error = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.rfind("error[", 0) == 0) {
      error = line;
      in_error = true;
    } else if (in_error && line.rfind("  ", 0) == 0) {
      error += " " + line.substr(line.find_first_not_of(' '));
    } else {
      in_error = false;
    }
  }
  return error.empty() ? last : error;
}

// Runs argv with stdout and stderr to `log`; returns a description of a
// failure, or "" on exit status 0.
std::string spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::cout.flush();
  const pid_t pid = fork();
  if (pid < 0) return "cannot fork";
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      ::close(fd);
    }
    execv(argv[0], argv.data());
    std::perror("execv");
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return "waitpid failed";
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 0 ? "" : "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended abnormally";
}

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "qhost" : p.string();
}

}  // namespace

SweepSpec SweepSpec::load(const std::string& path) {
  const Config raw = Config::load(path);
  const Table& root = raw.root();
  SweepSpec s;
  s.file = path;
  std::vector<std::string> problems;
  auto problem = [&](const std::string& key, const std::string& msg, const std::string& hint) {
    problems.push_back(raw.location(key).str() + ": " + key + ": " + msg +
                       (hint.empty() ? "" : " (hint: " + hint + ")"));
  };
  for (const auto& [k, v] : root)
    if (k != "base" && k != "out_dir" && k != "grid" && k != "zip" && k != "variant") {
      std::string hint = did_you_mean(k, {"base", "out_dir", "grid", "zip", "variant"});
      problem(k, "unknown key", hint.empty() ? "a sweep file has base, out_dir, [grid], [zip] and [[variant]]" : hint);
    }
  auto base = root.find("base");
  if (base == root.end() || base->second.type() != Value::Type::string) {
    problem("base", base == root.end() ? "missing" : "expected a string, got " + base->second.to_string(),
            "base = \"path/to/experiment.toml\" (relative to the sweep file)");
  } else {
    fs::path b = base->second.as_string();
    if (b.is_relative()) b = fs::path(path).parent_path() / b;
    s.base = b.lexically_normal().string();
    if (!fs::exists(s.base))
      problem("base", "'" + s.base + "' does not exist", "relative paths are relative to " + path);
  }
  auto out = root.find("out_dir");
  if (out != root.end() && out->second.type() != Value::Type::string)
    problem("out_dir", "expected a string, got " + out->second.to_string(), "");
  s.out_dir = out != root.end() && out->second.type() == Value::Type::string
                  ? out->second.as_string()
                  : (fs::path("runs") / fs::path(path).stem()).string();
  // [grid] and [zip]: "dotted.key" = [values]; a value is a scalar or a whole table.
  auto key_arrays = [&](const std::string& section,
                        std::vector<std::pair<std::string, std::vector<Value>>>& into) {
    auto it = root.find(section);
    if (it == root.end()) return;
    if (it->second.type() != Value::Type::table || it->second.as_table().empty()) {
      problem(section, "expected a non-empty table", "[" + section + "] with \"dotted.key\" = [value, ...]");
      return;
    }
    for (const auto& [k, v] : it->second.as_table()) {
      const std::string key = section + "." + k;
      if (v.type() != Value::Type::list || v.as_list().empty()) {
        problem(key, "expected a non-empty array of values, got " + v.to_string(), "e.g. \"" + k + "\" = [1, 2]");
        continue;
      }
      bool ok = true;
      for (const auto& e : v.as_list())
        if (e.type() == Value::Type::list) ok = false;
      if (!ok) {
        problem(key, "a value may be a scalar or a table, not an array", "");
        continue;
      }
      into.emplace_back(k, v.as_list());
    }
  };
  key_arrays("grid", s.grid);
  key_arrays("zip", s.zip);
  for (size_t i = 1; i < s.zip.size(); ++i)
    if (s.zip[i].second.size() != s.zip[0].second.size())
      problem("zip." + s.zip[i].first,
              std::to_string(s.zip[i].second.size()) + " values, but zip." + s.zip[0].first + " has " +
                  std::to_string(s.zip[0].second.size()),
              "zipped keys go together: give every [zip] key the same number of values");
  // [[variant]]: name + set = { "dotted.key" = value }.
  auto variants = root.find("variant");
  if (variants != root.end()) {
    if (variants->second.type() != Value::Type::list) {
      problem("variant", "expected [[variant]] entries", "[[variant]] with name = \"...\" and set = { ... }");
    } else {
      std::set<std::string> names;
      const auto& list = variants->second.as_list();
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string key = "variant[" + std::to_string(i) + "]";
        if (list[i].type() != Value::Type::table) {
          problem(key, "expected a table", "");
          continue;
        }
        const Table& t = list[i].as_table();
        for (const auto& [k, v] : t)
          if (k != "name" && k != "set") problem(key + "." + k, "unknown key", "a [[variant]] has name and set");
        auto n = t.find("name");
        auto set = t.find("set");
        if (n == t.end() || n->second.type() != Value::Type::string || n->second.as_string().empty()) {
          problem(key, "needs a name (a non-empty string)", "name = \"lsq\"");
          continue;
        }
        if (!names.insert(n->second.as_string()).second)
          problem(key + ".name", "'" + n->second.as_string() + "' names two variants", "give each variant its own name");
        if (set == t.end() || set->second.type() != Value::Type::table) {
          problem(key, "needs set = { \"dotted.key\" = value, ... }", "");
          continue;
        }
        SweepVariant variant{n->second.as_string(), {}};
        for (const auto& [k, v] : set->second.as_table()) variant.set.emplace_back(k, v);
        s.variants.push_back(std::move(variant));
      }
    }
  }
  if (s.grid.empty() && s.zip.empty() && s.variants.empty() && root.find("grid") == root.end() &&
      root.find("zip") == root.end() && root.find("variant") == root.end())
    problem("grid", "missing: nothing to sweep",
            "[grid] with \"dotted.key\" = [value, ...], e.g. \"quant.weight.type\" = [\"lsq\", \"dorefa\"]; or "
            "[zip], or [[variant]] entries");
  if (!problems.empty())
    throw qsdk::Error(qsdk::ErrorCategory::config, path,
                      std::to_string(problems.size()) + (problems.size() == 1 ? " problem" : " problems") + ":\n  " +
                          join(problems, "\n  "));
  // The base experiment's name (as `qhost run` would use it).
  const Config exp = Config::load(s.base);
  auto e = exp.root().find("experiment");
  if (e != exp.root().end() && e->second.type() == Value::Type::table) {
    auto n = e->second.as_table().find("name");
    if (n != e->second.as_table().end() && n->second.type() == Value::Type::string) s.name = n->second.as_string();
  }
  if (s.name.empty()) s.name = fs::path(s.base).stem().string();
  return s;
}

std::vector<SweepPoint> SweepSpec::points() const {
  std::vector<SweepPoint> out;
  if (variants.empty())
    out.push_back(SweepPoint{});
  else
    for (const auto& v : variants) out.push_back(SweepPoint{v.name, v.set, {}});
  if (!zip.empty()) {
    std::vector<SweepPoint> next;
    for (const auto& p : out)
      for (size_t i = 0; i < zip.front().second.size(); ++i) {
        SweepPoint q = p;
        for (const auto& [key, values] : zip) {
          q.set.emplace_back(key, values[i]);
          q.label.emplace_back(key, values[i]);
        }
        next.push_back(std::move(q));
      }
    out = std::move(next);
  }
  for (const auto& [key, values] : grid) {
    std::vector<SweepPoint> next;
    for (const auto& p : out)
      for (const auto& v : values) {
        SweepPoint q = p;
        q.set.emplace_back(key, v);
        q.label.emplace_back(key, v);
        next.push_back(std::move(q));
      }
    out = std::move(next);
  }
  return out;
}

std::string SweepSpec::folder_name(const SweepPoint& point) const {
  std::string n = safe(name);
  if (!point.variant.empty()) n += "__" + safe(point.variant);
  for (const auto& [k, v] : point.label) n += "__" + safe(k + "=" + value_text(v));
  return n;
}

int run_sweep(const SweepSpec& spec, const SweepOptions& options) {
  const std::string out_dir = options.out_dir.empty() ? spec.out_dir : options.out_dir;
  const std::string exe = options.qhost_exe.empty() ? self_exe() : options.qhost_exe;
  fs::create_directories(out_dir);
  const auto points = spec.points();
  struct Outcome {
    std::string folder, status, detail;
    std::optional<double> top1;
  };
  std::vector<Outcome> outcomes;
  int done = 0, skipped = 0, failed = 0;
  std::cout << "sweep " << spec.file << ": " << points.size() << " points of " << spec.base << " into " << out_dir
            << "\n";
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& point = points[i];
    Outcome o;
    o.folder = spec.folder_name(point);
    const fs::path dir = fs::path(out_dir) / o.folder;
    const std::string tag = "[" + std::to_string(i + 1) + "/" + std::to_string(points.size()) + "] " + o.folder;
    if (fs::exists(dir / kDoneMarker) && fs::exists(dir / "metrics.jsonl")) {
      o.status = "skipped";
      o.top1 = best_top1_from_metrics((dir / "metrics.jsonl").string());
      o.detail = "finished earlier";
      ++skipped;
      std::cout << tag << ": skipped (finished earlier)\n";
      outcomes.push_back(o);
      continue;
    }
    // A folder without the done marker is a point that failed or was stopped:
    // its rerun replaces whatever run it left (qhost run refuses that otherwise).
    const bool retry = fs::exists(dir);
    fs::create_directories(dir);
    fs::remove(dir / kDoneMarker);
    std::vector<std::string> args{exe};
    args.insert(args.end(), options.global_args.begin(), options.global_args.end());
    args.push_back("run");
    args.push_back(spec.base);
    std::string overrides;
    for (const auto& [k, v] : point.set) {
      args.push_back("--set");
      args.push_back(k + "=" + v.to_string());
      overrides += k + "=" + v.to_string() + "\n";
    }
    args.push_back("--out");
    args.push_back(dir.string());
    if (retry) args.push_back("--overwrite");
    const std::string log = (dir / "sweep.log").string();
    std::cout << tag << ": running ..." << std::endl;
    const auto t0 = std::chrono::steady_clock::now();
    const std::string failure = spawn(args, log);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.1f s", seconds);
    if (failure.empty()) {
      std::ofstream(dir / kDoneMarker) << overrides;
      o.status = "done";
      o.top1 = best_top1_from_metrics((dir / "metrics.jsonl").string());
      o.detail = secs;
      ++done;
      char top1[32] = "-";
      if (o.top1) std::snprintf(top1, sizeof(top1), "%.2f", *o.top1);
      std::cout << tag << ": done in " << secs << ", best top-1 " << top1 << "\n";
    } else {
      o.status = "FAILED";
      o.detail = failure + ": " + last_error_line(log) + " (log: " + log + ")";
      ++failed;
      std::cout << tag << ": FAILED (" << o.detail << ")\n";
    }
    outcomes.push_back(o);
  }
  std::cout << "\nstatus | point | best top-1 | detail\n--- | --- | ---: | ---\n";
  for (const auto& o : outcomes) {
    char top1[32] = "-";
    if (o.top1) std::snprintf(top1, sizeof(top1), "%.2f", *o.top1);
    std::cout << o.status << " | " << o.folder << " | " << top1 << " | " << o.detail << "\n";
  }
  std::cout << "\n"
            << points.size() << " points: " << done << " done, " << skipped << " skipped, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace qhost
