// Golden test: replays every case of every *.h5 file in $QTOOL_GOLDEN_DIR
// (default <source>/../shared/golden) through the quantizer plugins, loaded with
// dlopen, and compares forward outputs, input and parameter gradients, state
// updates and construction-time state with the reference's values.
//
// Everything is derived from the file (docs/golden.md#layout, docs/golden.md#how-the-test-uses-them): the plugin from
// quantizers/<q>@choice, the options from the other quantizers/<q> attributes and
// the keyword list, the context from the tensors' shapes and opt.batch_size /
// opt.input_size. Cases that record reference bugs we deliberately do not
// reproduce are selected by the rules of kNotReproduced below; they must DIFFER
// from the reference (otherwise the rule, or our fix, is wrong).
#include "h5_reader.hpp"
#include "test_plugins.hpp"

#include <quant_common/options.hpp>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using qtool_golden::H5Group;

std::string golden_dir() {
  if (const char* d = std::getenv("QTOOL_GOLDEN_DIR"); d != nullptr && d[0] != '\0') return d;
  if (const char* s = std::getenv("QTOOL_SOURCE_DIR"); s != nullptr && s[0] != '\0')
    return (fs::path(s) / ".." / "shared" / "golden").lexically_normal().string();
  return (fs::path(QTOOL_TEST_SOURCE_DIR) / ".." / "shared" / "golden").lexically_normal().string();
}

std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(golden_dir(), ec))
    if (e.path().extension() == ".h5") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::set<std::string> split(const std::string& s, char sep) {
  std::set<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.insert(item);
  return out;
}

/// One quantizer of a case, as the reference configured it.
struct QuantSpec {
  std::string qname;   ///< "self", "quant_activation", ...
  std::string prefix;  ///< "" or "quant_activation."
  std::string tag;     ///< fm / wt / ot
  std::string choice;  ///< reference algorithm name
  std::string plugin;  ///< our plugin
  qsdk::Table options;
  qsdk::QuantizerContext ctx;
  int64_t stable = 0;
  std::shared_ptr<qsdk::QuantizerImpl> module;
};

/// A rule for a reference bug we fix instead of reproducing.
struct NotReproduced {
  const char* id;
  const char* reason;
  std::function<bool(const H5Group& c, const QuantSpec& q)> applies;
};

bool has_train_step(const H5Group& c) { return split(c.str("step_modes"), ',').count("train") > 0; }

const std::vector<NotReproduced> kNotReproduced = {
    {"lqnet-true-division",
     "LQ-Net refit under PyTorch >= 1.5 true division decodes every code bit as 0 "
     "(docs/methods.md#lq-net-basis-refit-qem, docs/methods.md#reference-bugs-and-what-qtool-does item 2); "
     "we implement the intended floor bit extraction, which the *_floordiv cases record. Rule: choice lqnet, "
     "int_division = \"true\", and at least one train step (eval-only cases never decode bits).",
     [](const H5Group& c, const QuantSpec& q) {
       return q.choice == "lqnet" && c.str("int_division") == "true" && has_train_step(c);
     }},
    {"xnor-frozen-counter",
     "The reference XNOR path never advances `iteration`, so a counter <= stable returns the input unchanged "
     "(docs/methods.md#xnor-binarisation bug b, docs/methods.md#reference-bugs-and-what-qtool-does item 1); we always "
     "binarise (the warm-up only runs with stable > 0). Rule: choice "
     "xnor/xnor++ and step0 state_before iteration <= stable.",
     [](const H5Group& c, const QuantSpec& q) {
       if (q.choice != "xnor" && q.choice != "xnor++") return false;
       const std::string it = "step0/state_before/" + q.prefix + "iteration";
       if (!c.has_path(it)) return false;
       return c.tensor(it).item<double>() <= static_cast<double>(q.stable);
     }},
};

std::string plugin_for(const std::string& choice) {
  if (choice == "lsq") return "lsq";
  if (choice == "dorefa-net" || choice == "DorefaParamsBinarizationSTE") return "dorefa";
  if (choice == "pact") return "pact";
  if (choice == "non-uniform" || choice == "non-uniform-with-closed_form") return "nonuniform";
  if (choice == "lqnet") return "lqnet";
  if (choice == "xnor" || choice == "xnor++") return "xnor";
  return "";
}

/// Values the reference uses when an option is not set; an option our plugin
/// does not declare may be dropped only when the case uses this value.
bool neutral(const std::string& key, const qsdk::Value& v) {
  static const qsdk::Table kNeutral = {
      {"boundary", 1.0},       {"scale", 0.5},         {"correlate", -1.0},       {"grad_type", "none"},
      {"grad_scale", "none"},  {"stable", int64_t{0}}, {"adaptive", "none"},      {"custom", "none"},
      {"independent_norm", false}, {"gamma", false},   {"binarize", false},       {"closed_form", false},
      {"custom_update", false}};
  // DoReFa, PACT and XNOR ignore the half-range switch in the reference (docs/methods.md#dorefa,
  // docs/methods.md#xnor-binarisation).
  if (key == "half_range") return true;
  auto it = kNeutral.find(key);
  return it != kNeutral.end() && it->second == v;
}

QuantSpec make_spec(const H5Group& c, const std::string& qname, const std::vector<int64_t>& in_shape,
                    const std::vector<int64_t>& w_shape, std::vector<std::string>& problems) {
  H5Group q = c.group("quantizers/" + qname);
  QuantSpec s;
  s.qname = qname;
  s.prefix = qname == "self" ? "" : qname + ".";
  s.tag = q.str("tag");
  s.choice = q.str("choice");
  s.plugin = plugin_for(s.choice);
  const auto kw = split(c.str("keyword"), ',');
  s.stable = std::max<int64_t>(q.int_attr("stable"), 0);
  qsdk::Table t;
  t["bits"] = q.int_attr("bit");
  t["levels"] = q.int_attr("num_levels");
  t["half_range"] = q.int_attr("half_range") != 0 ? "true" : "false";
  t["quant_group"] = q.int_attr("quant_group");
  if (!std::isnan(q.dbl("boundary"))) t["boundary"] = q.dbl("boundary");
  t["scale"] = q.dbl("scale");
  t["correlate"] = q.dbl("correlate");
  t["grad_type"] = q.str("grad_type");
  t["grad_scale"] = q.str("grad_scale");
  t["stable"] = s.stable;
  t["adaptive"] = q.str("adaptive");
  t["custom"] = q.str("custom");
  t["independent_norm"] = kw.count("independent_norm") > 0;
  t["gamma"] = s.choice == "xnor++" || kw.count(s.tag + "_gamma") > 0;
  t["binarize"] = s.choice == "DorefaParamsBinarizationSTE";
  t["closed_form"] = s.choice == "non-uniform-with-closed_form";
  t["custom_update"] = kw.count("custom-update") > 0;

  s.ctx.target = s.tag == "fm" ? qsdk::QuantTarget::activation
                               : (s.tag == "wt" ? qsdk::QuantTarget::weight : qsdk::QuantTarget::output);
  if (s.tag == "wt") {
    s.ctx.shape = w_shape;
  } else {
    s.ctx.shape = {1, s.tag == "fm" ? in_shape.at(1) : w_shape.at(0), 1, 1};
  }
  s.ctx.module_path = qname;
  s.ctx.batch_size = std::stoll(c.str("opt.batch_size"));
  s.ctx.input_size = std::stoll(c.str("opt.input_size"));

  if (s.plugin.empty()) {
    problems.push_back(qname + ": no plugin for choice " + s.choice);
    return s;
  }
  const auto& spec = qtool_golden::quantizer_spec(s.plugin);
  for (const auto& kv : t) {
    if (spec.schema.find(kv.first) != nullptr) {
      s.options[kv.first] = kv.second;
    } else if (!neutral(kv.first, kv.second)) {
      problems.push_back(qname + ": plugin " + s.plugin + " has no option " + kv.first + " (case uses " +
                         kv.second.to_string() + ")");
    }
  }

  // Cross-check our construction-time derivations (docs/methods.md#the-quantizer-object) with the reference's.
  qplug_quant_common::CommonOptions co;
  co.bits = q.int_attr("bit");
  co.levels = q.int_attr("num_levels");
  co.quant_group = q.int_attr("quant_group");
  co.scale = q.dbl("scale");
  for (const auto& [spelling, value] : qplug_quant_common::grad_scale_names())
    if (spelling == q.str("grad_scale")) co.grad_scale = value;
  co.independent_norm = kw.count("independent_norm") > 0;
  const auto setup = qplug_quant_common::make_setup(co, s.ctx);
  if (setup.fan != q.int_attr("fan")) problems.push_back(qname + ": fan " + std::to_string(setup.fan));
  if (setup.n_elements != q.int_attr("nElements"))
    problems.push_back(qname + ": nElements " + std::to_string(setup.n_elements));
  if (setup.norm_groups != q.int_attr("norm_group"))
    problems.push_back(qname + ": norm_group " + std::to_string(setup.norm_groups));
  const double gf = q.dbl("grad_factor");
  if (!std::isnan(gf) && std::fabs(setup.grad_factor - gf) > 1e-12 * (1 + std::fabs(gf)))
    problems.push_back(qname + ": grad_factor " + std::to_string(setup.grad_factor));
  return s;
}

/// Collects comparison failures of one case.
struct Checker {
  double rel;  // tolerance: rel * (1 + max|ref|), absolute
  std::vector<std::string> failures;
  int64_t compared = 0;

  void compare(const std::string& what, const torch::Tensor& got, const torch::Tensor& ref) {
    ++compared;
    if (!got.defined()) {
      failures.push_back(what + ": missing");
      return;
    }
    // The reference turns the closed-form non-uniform basis into a 0-d tensor after its
    // first refit; our buffers keep their registered shape (1,): same value, same numel.
    const bool scalar_vs_one = got.numel() == 1 && ref.numel() == 1 && (got.dim() == 0 || ref.dim() == 0);
    if (got.sizes() != ref.sizes() && !scalar_vs_one) {
      std::ostringstream os;
      os << what << ": shape " << got.sizes() << " vs reference " << ref.sizes();
      failures.push_back(os.str());
      return;
    }
    torch::Tensor g = got.detach().to(torch::kDouble).reshape(ref.sizes()), r = ref.to(torch::kDouble);
    const double tol = rel * (1.0 + (r.numel() ? r.abs().max().item<double>() : 0.0));
    const double err = r.numel() ? (g - r).abs().max().item<double>() : 0.0;
    if (!(err <= tol)) {
      std::ostringstream os;
      os << what << ": max error " << err << " > " << tol;
      failures.push_back(os.str());
    }
  }
};

struct Named {
  torch::Tensor tensor;  // shares the module's storage and autograd metadata
  bool parameter = false;
  bool found() const { return tensor.defined(); }
};

/// Looks up "<prefix>name" across the case's quantizers (and the conv weight).
Named find_tensor(std::vector<QuantSpec>& qs, torch::Tensor* weight, const std::string& name) {
  if (name == "weight" && weight != nullptr) return {*weight, true};
  for (auto& q : qs) {
    if (!q.module || name.rfind(q.prefix, 0) != 0) continue;
    const std::string local = name.substr(q.prefix.size());
    auto params = q.module->named_parameters();
    if (auto* p = params.find(local)) return {*p, true};
    auto buffers = q.module->named_buffers();
    if (auto* b = buffers.find(local)) return {*b, false};
  }
  return {};
}

struct CaseOutcome {
  std::vector<std::string> failures;  // comparison failures
  std::vector<std::string> errors;    // structural problems (always fatal)
  std::string not_reproduced;         // rule id, if any
};

CaseOutcome run_case(const H5Group& file, const std::string& name) {
  CaseOutcome out;
  H5Group c = file.group(name);
  const bool conv = c.str("kind") == "conv";
  Checker chk{conv ? 1e-4 : 1e-5};

  const torch::Tensor in0 = c.tensor("step0/input");
  std::vector<int64_t> in_shape(in0.sizes().begin(), in0.sizes().end());
  std::vector<int64_t> w_shape = in_shape;
  if (conv) {
    const int64_t k = c.int_attr("conv.kernel_size");
    w_shape = {c.int_attr("conv.out_channels"), c.int_attr("conv.in_channels") / c.int_attr("conv.groups"), k, k};
  }

  std::vector<QuantSpec> qs;
  for (const auto& qname : c.group("quantizers").children()) {
    H5Group q = c.group("quantizers/" + qname);
    if (q.int_attr("enable") == 0) continue;  // disabled quantizers are simply not attached
    QuantSpec s = make_spec(c, qname, in_shape, w_shape, out.errors);
    for (const auto& rule : kNotReproduced)
      if (rule.applies(c, s)) out.not_reproduced = rule.id;
    if (!s.plugin.empty()) {
      try {
        s.module = qtool_golden::make_quantizer(s.plugin, s.options, s.ctx);
      } catch (const std::exception& e) {
        out.errors.push_back(qname + ": construction failed: " + e.what());
      }
    }
    qs.push_back(std::move(s));
  }
  if (!out.errors.empty()) return out;

  // Construction-time parameters and state (before jitter and presets).
  for (const char* kind : {"init/params", "init/state"}) {
    if (!c.has_path(kind)) continue;
    for (const auto& n : c.group(kind).children()) {
      if (conv && n == "weight") continue;  // the conv layer's own random init
      Named t = find_tensor(qs, nullptr, n);
      if (!t.found()) {
        out.errors.push_back(std::string(kind) + "/" + n + ": no such parameter/buffer");
        continue;
      }
      chk.compare(std::string(kind) + "/" + n, t.tensor, c.tensor(std::string(kind) + "/" + n));
    }
  }
  // Names line up exactly: every parameter/buffer we own appears in the file and vice versa.
  for (auto& q : qs) {
    for (const auto& p : q.module->named_parameters())
      if (!c.has_path("step0/params_before/" + q.prefix + p.key()))
        out.errors.push_back("parameter " + q.prefix + p.key() + " is not in the reference");
    for (const auto& b : q.module->named_buffers())
      if (!c.has_path("step0/state_before/" + q.prefix + b.key()))
        out.errors.push_back("buffer " + q.prefix + b.key() + " is not in the reference");
  }

  torch::Tensor weight;
  const int64_t steps = c.int_attr("num_steps");
  for (int64_t k = 0; k < steps; ++k) {
    const std::string sp = "step" + std::to_string(k);
    H5Group st = c.group(sp);
    const bool train = st.str("mode") == "train";
    const bool backward = st.int_attr("backward") != 0;
    for (auto& q : qs) q.module->train(train);
    // Load the step's "before" values.
    for (const char* kind : {"params_before", "state_before"}) {
      if (!st.has(kind)) continue;
      for (const auto& n : st.group(kind).children()) {
        torch::Tensor v = st.tensor(std::string(kind) + "/" + n);
        if (conv && n == "weight") {
          weight = v.clone().requires_grad_(true);
          continue;
        }
        Named t = find_tensor(qs, nullptr, n);
        if (v.dim() == 0 && t.found() && t.tensor.numel() == 1) v = v.reshape(t.tensor.sizes());  // see compare()
        if (!t.found() || t.tensor.sizes() != v.sizes() ||
            t.parameter != (std::string(kind) == "params_before")) {
          out.errors.push_back(sp + "/" + kind + "/" + n + ": no matching parameter/buffer");
          continue;
        }
        torch::NoGradGuard ng;
        t.tensor.copy_(v);
      }
    }
    if (!out.errors.empty()) return out;
    for (auto& q : qs)
      for (auto& p : q.module->parameters()) p.mutable_grad() = torch::Tensor();

    torch::Tensor x = st.tensor("input").clone().requires_grad_(backward);
    torch::Tensor y;
    auto quant = [&](const std::string& qname, const torch::Tensor& t) {
      for (auto& q : qs)
        if (q.qname == qname) return q.module->forward(t);
      return t;
    };
    try {
      if (!conv) {
        y = qs.at(0).module->forward(x);
      } else {
        const int64_t p = c.int_attr("conv.padding");
        torch::Tensor wq = quant("quant_weight", weight);
        torch::Tensor xq;
        if (c.int_attr("conv.padding_after_quant") != 0) {
          xq = torch::constant_pad_nd(quant("quant_activation", x), {p, p, p, p}, 0);
        } else {
          xq = quant("quant_activation", torch::constant_pad_nd(x, {p, p, p, p}, 0));
        }
        torch::Tensor bias;
        if (st.has_path("params_before/bias")) bias = st.tensor("params_before/bias");
        const int64_t s = c.int_attr("conv.stride"), d = c.int_attr("conv.dilation");
        y = torch::conv2d(xq, wq, bias, std::vector<int64_t>{s, s}, std::vector<int64_t>{0, 0},
                          std::vector<int64_t>{d, d}, c.int_attr("conv.groups"));
        y = quant("quant_output", y);
      }
    } catch (const std::exception& e) {
      out.errors.push_back(sp + ": forward threw: " + e.what());
      return out;
    }
    chk.compare(sp + "/output", y, st.tensor("output"));
    if (backward) {
      y.backward(st.tensor("grad_output"));
      chk.compare(sp + "/grad_input", x.grad().defined() ? x.grad() : torch::zeros_like(x), st.tensor("grad_input"));
      if (st.has("grad_params")) {
        for (const auto& n : st.group("grad_params").children()) {
          Named t = find_tensor(qs, conv ? &weight : nullptr, n);
          if (!t.found()) {
            out.errors.push_back(sp + "/grad_params/" + n + ": no such parameter");
            continue;
          }
          torch::Tensor g = t.tensor.grad().defined() ? t.tensor.grad() : torch::zeros_like(t.tensor);
          chk.compare(sp + "/grad_params/" + n, g, st.tensor("grad_params/" + n));
        }
      }
    }
    if (st.has("state_after")) {
      for (const auto& n : st.group("state_after").children()) {
        Named t = find_tensor(qs, nullptr, n);
        if (!t.found()) {
          out.errors.push_back(sp + "/state_after/" + n + ": no such buffer");
          continue;
        }
        chk.compare(sp + "/state_after/" + n, t.tensor, st.tensor("state_after/" + n));
      }
    }
    // In-forward parameter changes (warm-up clip) show in the next step's params_before.
    const std::string next = "step" + std::to_string(k + 1) + "/params_before";
    if (k + 1 < steps && c.has_path(next)) {
      for (const auto& n : c.group(next).children()) {
        if (conv && n == "weight") continue;
        Named t = find_tensor(qs, nullptr, n);
        if (t.found()) chk.compare(sp + "/carried " + n, t.tensor, c.tensor(next + "/" + n));
      }
    }
  }
  if (chk.compared == 0) out.errors.push_back("nothing was compared");
  out.failures = chk.failures;
  return out;
}

class GoldenFile : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenFile, EveryCase) {
  const std::string path = golden_dir() + "/" + GetParam();
  H5Group file = H5Group::open_file(path);
  ASSERT_EQ(file.int_attr("format_version"), 1) << path;
  int passed = 0, differ = 0, total = 0;
  for (const auto& name : file.children()) {
    ++total;
    CaseOutcome r;
    try {
      r = run_case(file, name);
    } catch (const std::exception& e) {
      r.errors.push_back(std::string("exception: ") + e.what());
    }
    std::ostringstream detail;
    for (const auto& e : r.errors) detail << "\n    error: " << e;
    for (const auto& f : r.failures) detail << "\n    " << f;
    if (!r.errors.empty()) {
      ADD_FAILURE() << GetParam() << "/" << name << detail.str();
    } else if (!r.not_reproduced.empty()) {
      if (r.failures.empty()) {
        ADD_FAILURE() << GetParam() << "/" << name << ": listed as not reproduced (" << r.not_reproduced
                      << ") but matches the reference";
      } else {
        ++differ;
        std::cout << "[golden] " << GetParam() << "/" << name << ": not reproduced by design (" << r.not_reproduced
                  << "), differs as expected: " << r.failures.front() << "\n";
      }
    } else if (!r.failures.empty()) {
      ADD_FAILURE() << GetParam() << "/" << name << detail.str();
    } else {
      ++passed;
    }
  }
  EXPECT_GT(total, 0) << path << " has no cases";
  std::cout << "[golden] " << GetParam() << ": " << passed << "/" << total << " cases match, " << differ
            << " not reproduced by design (differ as expected)\n";
}

std::string file_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = fs::path(info.param).stem().string();
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenFile, ::testing::ValuesIn(golden_files()), file_test_name);

TEST(Golden, DirectoryHasFiles) { EXPECT_FALSE(golden_files().empty()) << "no *.h5 in " << golden_dir(); }

TEST(Golden, NotReproducedTableIsDocumented) {
  for (const auto& r : kNotReproduced) {
    std::cout << "[golden] not reproduced: " << r.id << ": " << r.reason << "\n";
    EXPECT_GT(std::string(r.reason).size(), 20u);
  }
}

}  // namespace
