// Results of finished runs: `qhost report` and the summary of `qhost sweep`.
#include "sweep/run_results.hpp"

#include "config/config.hpp"

#include <qsdk/error.hpp>
#include <qsdk/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace qhost {
namespace {

namespace fs = std::filesystem;
using qsdk::Table;
using qsdk::Value;

const Table& sub(const Table& t, const std::string& key) {
  static const Table empty;
  auto it = t.find(key);
  return it == t.end() || it->second.type() != Value::Type::table ? empty : it->second.as_table();
}

std::string str_or(const Table& t, const std::string& key, const std::string& fallback = "") {
  auto it = t.find(key);
  return it != t.end() && it->second.type() == Value::Type::string ? it->second.as_string() : fallback;
}

std::optional<int64_t> int_of(const Table& t, const std::string& key) {
  auto it = t.find(key);
  if (it == t.end() || it->second.type() != Value::Type::integer) return std::nullopt;
  return it->second.as_int();
}

bool bool_of(const Table& t, const std::string& key) {
  auto it = t.find(key);
  return it != t.end() && it->second.type() == Value::Type::boolean && it->second.as_bool();
}

// The number after `"key": ` in one flat JSON line (MetricsLog's format).
std::optional<double> json_number(const std::string& line, const std::string& key) {
  const std::string pat = "\"" + key + "\": ";
  const auto p = line.find(pat);
  if (p == std::string::npos) return std::nullopt;
  const char* start = line.c_str() + p + pat.size();
  char* end = nullptr;
  const double v = std::strtod(start, &end);
  if (end == start) return std::nullopt;  // null (non-finite) or not a number
  return v;
}

// The quantizer table of [quant] <target>, or nullptr when not quantized.
const Table* quantizer(const Table& quant, const std::string& target) {
  auto it = quant.find(target);
  if (it == quant.end() || it->second.type() != Value::Type::table) return nullptr;
  const auto type = str_or(it->second.as_table(), "type");
  return type.empty() || type == "none" ? nullptr : &it->second.as_table();
}

std::string bits_text(const Table* q) {
  if (!q) return "32";
  if (auto levels = int_of(*q, "levels"); levels && *levels > 0) {
    if (*levels == 3) return "t";
    const double b = std::log2(static_cast<double>(*levels));
    if (b == std::floor(b)) return std::to_string(static_cast<int64_t>(b));
    return std::to_string(*levels) + "L";
  }
  if (auto bits = int_of(*q, "bits")) return std::to_string(*bits);
  const auto type = str_or(*q, "type");
  if (type == "xnor") return "1";
  return "?";
}

std::string method_name(const std::string& type) {
  static const std::map<std::string, std::string> names{{"lsq", "LSQ"},      {"dorefa", "Dorefa-Net"},
                                                        {"lqnet", "LQ-net"}, {"xnor", "Xnor-Net"},
                                                        {"pact", "PACT"},    {"nonuniform", "non-uniform"}};
  auto it = names.find(type);
  return it == names.end() ? type : it->second;
}

std::string model_name(const Table& model) {
  const auto type = str_or(model, "type", "?");
  const auto depth = int_of(model, "depth");
  const std::string d = depth ? std::to_string(*depth) : "";
  if (type == "resnet") return "ResNet-" + d;
  if (type == "torch_resnet") return "Torch-R" + d;
  static const std::map<std::string, std::string> names{{"fixup_resnet", "Fixup-ResNet"},
                                                        {"prone_resnet", "ProNE-ResNet"},
                                                        {"bireal_resnet", "BiReal-ResNet"},
                                                        {"groupnet_resnet", "GroupNet-ResNet"}};
  auto it = names.find(type);
  const std::string base = it == names.end() ? type : it->second;
  return d.empty() ? base : base + "-" + d;
}

std::string dataset_name(const Table& data) {
  std::string root = str_or(data, "root");
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (!root.empty()) return fs::path(root).filename().string();
  return str_or(data, "type", "?");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string top1_text(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", *v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Every leaf of `t` as dotted key -> value text; tables inside arrays as key[i].
void flatten(const Table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix.empty() ? k : prefix + "." + k;
    if (v.type() == Value::Type::table) {
      flatten(v.as_table(), key, out);
    } else if (v.type() == Value::Type::list && !v.as_list().empty() &&
               v.as_list().front().type() == Value::Type::table) {
      for (size_t i = 0; i < v.as_list().size(); ++i)
        if (v.as_list()[i].type() == Value::Type::table)
          flatten(v.as_list()[i].as_table(), key + "[" + std::to_string(i) + "]", out);
    } else {
      out[key] = v.type() == Value::Type::string ? v.as_string() : v.to_string();
    }
  }
}

// What ran, from metrics.jsonl's train_epoch lines: "ep<E>" for a whole run,
// "ep<ran>/<E>" when fewer epochs ran, and "(<steps> of <batches> steps)" when
// epochs were cut short (max_steps_per_epoch, --smoke).
std::string ran_label(const std::string& metrics_path, int64_t epochs, int64_t max_steps) {
  std::ifstream in(metrics_path);
  std::string line;
  int64_t ran = 0, steps = -1, batches = -1;
  while (std::getline(in, line)) {
    if (line.find("\"kind\": \"train_epoch\"") == std::string::npos) continue;
    ++ran;
    if (auto v = json_number(line, "steps")) steps = static_cast<int64_t>(*v);
    if (auto v = json_number(line, "epoch_batches")) batches = static_cast<int64_t>(*v);
  }
  std::string label = "ep" + (ran == epochs ? std::to_string(epochs) : std::to_string(ran) + "/" + std::to_string(epochs));
  if (steps >= 0 && batches > 0 && steps < batches)
    label += " (" + std::to_string(steps) + " of " + std::to_string(batches) + " steps)";
  else if (steps < 0 && max_steps > 0)  // written before metrics recorded steps
    label += " (at most " + std::to_string(max_steps) + " steps)";
  return label;
}

// Keys whose values differ between rows (a key missing in a row counts as a value).
std::vector<std::string> differing_keys(const std::vector<RunSummary>& rows) {
  std::set<std::string> keys;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.settings) keys.insert(k);
  std::vector<std::string> out;
  if (rows.size() < 2) return out;
  auto differs = [&](const std::string& k) {
    auto value = [&](const RunSummary& r) {
      auto it = r.settings.find(k);
      return it == r.settings.end() ? std::string("(unset)") : it->second;
    };
    for (const auto& r : rows)
      if (value(r) != value(rows.front())) return true;
    return false;
  };
  // Where a component's type differs, its other options are that component's
  // own (its defaults differ too): the type says it.
  std::vector<std::string> swapped;
  for (const auto& k : keys)
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ".type") == 0 && differs(k)) swapped.push_back(k.substr(0, k.size() - 4));
  for (const auto& k : keys) {
    if (k == "experiment.name" || k == "experiment.out_dir" || !differs(k)) continue;
    const bool inside_swapped = std::any_of(swapped.begin(), swapped.end(), [&](const std::string& prefix) {
      return k.rfind(prefix, 0) == 0 && k != prefix + "type";
    });
    if (!inside_swapped) out.push_back(k);
  }
  return out;
}

std::string differs_text(const RunSummary& r, const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    auto it = r.settings.find(k);
    out += (out.empty() ? "" : ", ") + k + "=" + (it == r.settings.end() ? "(unset)" : it->second);
  }
  return out;
}

}  // namespace

std::optional<double> best_top1_from_metrics(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::optional<double> best;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"kind\": \"eval\"") == std::string::npos) continue;
    for (const char* key : {"best_top1", "top1"})
      if (auto v = json_number(line, key)) best = best ? std::max(*best, *v) : *v;
  }
  return best;
}

RunSummary summarize_run(const std::string& dir) {
  RunSummary r;
  r.dir = dir;
  r.config = (fs::path(dir) / "resolved.toml").string();
  if (!fs::exists(r.config))
    throw qsdk::Error(qsdk::ErrorCategory::usage, dir, "is not a run folder (no resolved.toml)",
                      "give a run folder written by `qhost run`, or a folder of them");
  const auto config = Config::from_string(read_text(r.config), r.config);
  const Table& root = config.root();
  r.dataset = dataset_name(sub(root, "data"));
  r.model = model_name(sub(root, "model"));
  const Table& quant = sub(root, "quant");
  const Table* wq = quantizer(quant, "weight");
  const Table* aq = quantizer(quant, "activation");
  const std::string wt = wq ? str_or(*wq, "type") : "", at = aq ? str_or(*aq, "type") : "";
  if (wt.empty() && at.empty())
    r.method = "-";
  else if (wt == at || at.empty() || wt.empty())
    r.method = method_name(wt.empty() ? at : wt);
  else
    r.method = "A:" + method_name(at) + " W:" + method_name(wt);
  r.aw = bits_text(aq) + "/" + bits_text(wq);
  r.best_top1 = best_top1_from_metrics((fs::path(dir) / "metrics.jsonl").string());

  std::vector<std::string> flags;
  const auto order = str_or(sub(root, "model"), "order");
  if (!order.empty()) flags.push_back(order);
  if (bool_of(quant, "real_skip")) flags.push_back("real_skip");
  if (bool_of(quant, "padding_after_quant")) flags.push_back("padding_after_quant");
  if (wq && str_or(*wq, "adaptive") == "var-mean") flags.push_back("wt_var-mean");
  auto tricks = root.find("trick");
  if (tricks != root.end() && tricks->second.type() == Value::Type::list)
    for (const auto& t : tricks->second.as_list())
      if (t.type() == Value::Type::table) flags.push_back(str_or(t.as_table(), "type", "?"));
  auto sched = root.find("schedule");
  if (sched != root.end() && sched->second.type() == Value::Type::list && !sched->second.as_list().empty())
    flags.push_back("schedule");
  if (auto ep = int_of(sub(root, "train"), "epochs"))
    flags.push_back(ran_label((fs::path(dir) / "metrics.jsonl").string(), *ep,
                              int_of(sub(root, "train"), "max_steps_per_epoch").value_or(0)));
  flatten(root, "", r.settings);
  for (size_t i = 0; i < flags.size(); ++i) r.flags += (i ? "," : "") + flags[i];
  return r;
}

std::vector<std::string> find_run_dirs(const std::string& path) {
  if (fs::exists(fs::path(path) / "resolved.toml")) return {path};
  if (!fs::is_directory(path))
    throw qsdk::Error(qsdk::ErrorCategory::usage, path, "no such folder", "give a run folder or a folder of them");
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_directory() && fs::exists(e.path() / "resolved.toml")) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  if (out.empty())
    throw qsdk::Error(qsdk::ErrorCategory::usage, path, "holds no run folder (no */resolved.toml)",
                      "give a run folder written by `qhost run`, or a folder of them");
  return out;
}

std::string report_markdown(const std::vector<RunSummary>& rows) {
  const auto differing = differing_keys(rows);
  std::ostringstream o;
  o << "Dataset | Method | Model | A/W | Top-1 | Flags | " << (differing.empty() ? "" : "Differs | ") << "Config\n";
  o << "--- |:---:|:---:|:---:|:---:|:---:|:---:" << (differing.empty() ? "" : "|:---") << "\n";
  for (const auto& r : rows) {
    o << r.dataset << " | " << r.method << " | " << r.model << " | " << r.aw << " | " << top1_text(r.best_top1) << " | "
      << r.flags << " | ";
    if (!differing.empty()) o << differs_text(r, differing) << " | ";
    o << "[File](" << r.config << ")\n";
  }
  return o.str();
}

std::string report_csv(const std::vector<RunSummary>& rows) {
  const auto differing = differing_keys(rows);
  std::ostringstream o;
  o << "dataset,method,model,a_w,top1,flags,differs,config\n";
  for (const auto& r : rows)
    o << csv_field(r.dataset) << "," << csv_field(r.method) << "," << csv_field(r.model) << "," << csv_field(r.aw)
      << "," << (r.best_top1 ? top1_text(r.best_top1) : "") << "," << csv_field(r.flags) << ","
      << csv_field(differs_text(r, differing)) << "," << csv_field(r.config) << "\n";
  return o.str();
}

}  // namespace qhost
