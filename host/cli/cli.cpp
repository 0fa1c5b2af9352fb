// Command-line parsing and dispatch. Global options may appear before or after
// the command; each command has its own options and --help.
#include "cli/cli.hpp"

#include "cli/cli_sweep.hpp"
#include "config/config.hpp"
#include "export/onnx_export.hpp"
#include "platform/errors.hpp"
#include "platform/logging.hpp"
#include "platform/version_info.hpp"
#include "plugins/plugin_loader.hpp"
#include "plugins/registry.hpp"
#include "run/run.hpp"

#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>

#include <charconv>
#include <iostream>

namespace po = boost::program_options;

namespace qhost {

namespace {
using qsdk::ErrorCategory;

const char* kUsage =
    "usage: qhost [--plugin-path DIR]... [--log-level LEVEL] <command> [options]\n"
    "\n"
    "commands:\n"
    "  run FILE.toml        train and evaluate an experiment\n"
    "  eval CHECKPOINT.h5   evaluate a checkpoint\n"
    "  export CHECKPOINT.h5 write the model as ONNX (QuantizeLinear/DequantizeLinear) or a qtool integer model\n"
    "  check FILE.toml      validate an experiment without running it\n"
    "  list                 list the components of every plugin found\n"
    "  describe KIND/NAME   options, types, defaults and docs of a component (or of a section: describe data)\n"
    "  check-plugin PLUGIN  load a plugin (name or path) and exercise its components\n"
    "  sweep SWEEP.toml     run every point of a grid of overrides (one `qhost run` child each)\n"
    "  report RUN_DIR...    results table (Markdown; --csv FILE) of run folders\n"
    "\n"
    "`qhost <command> --help` describes a command's options.\n";

const std::vector<std::string> kCommands{"run",   "eval",   "check",  "list", "describe", "check-plugin",
                                         "sweep", "report", "export"};

struct Globals {
  std::vector<std::string> plugin_path;
  std::string log_level = "info";
};

po::options_description global_options(Globals& g) {
  po::options_description d("global options");
  d.add_options()("help,h", "show help (after a command: that command's help)")(
      "version", "print qtool, SDK and LibTorch versions")(
      "plugin-path", po::value<std::vector<std::string>>(&g.plugin_path)->composing(),
      "extra plugin folder (repeatable; colon lists allowed), searched first")(
      "log-level", po::value<std::string>(&g.log_level)->default_value("info"),
      "trace, debug, info, warn, error, critical or off");
  return d;
}

// Parses a command's own arguments; boost errors become usage errors.
po::variables_map parse_command(const std::string& command, const std::vector<std::string>& args,
                                const po::options_description& options, const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw qsdk::Error(ErrorCategory::usage, "qhost " + command, e.what(), "see `qhost " + command + " --help`");
  }
  return vm;
}

void require(const po::variables_map& vm, const std::string& command, const char* name, const char* what) {
  if (!vm.count(name))
    throw qsdk::Error(ErrorCategory::usage, "qhost " + command, std::string("missing ") + what,
                      "see `qhost " + command + " --help`");
}

void print_help(const std::string& command, const std::string& synopsis, const po::options_description& options,
                const po::options_description& globals) {
  std::cout << "usage: qhost " << command << " " << synopsis << "\n\n" << options << "\n" << globals;
}

void report_load_failures(const std::vector<qsdk::Error>& errors) {
  for (const auto& e : errors) std::cerr << "error[plugin]: " << e.what() << std::endl;
}
}  // namespace

int cli_main(int argc, char** argv) {
  Globals g;
  auto globals = global_options(g);
  po::options_description first(globals);
  first.add_options()("command", po::value<std::string>(), "")("args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description first_pos;
  first_pos.add("command", 1).add("args", -1);
  po::variables_map vm;
  po::parsed_options parsed(nullptr);
  try {
    parsed = po::command_line_parser(argc, argv).options(first).positional(first_pos).allow_unregistered().run();
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw qsdk::Error(ErrorCategory::usage, "qhost", e.what(), "see `qhost --help`");
  }
  if (vm.count("version")) {
    std::cout << version_text();
    return 0;
  }
  if (!vm.count("command")) {
    if (vm.count("help")) {
      std::cout << kUsage << "\n" << globals;
      return 0;
    }
    std::cerr << kUsage;
    throw qsdk::Error(ErrorCategory::usage, "qhost", "no command given", "e.g. `qhost list`");
  }
  // "command" and "args" are registered only to take the positional words; as
  // --command/--args (or an abbreviation) they are not options of qhost.
  for (const auto& o : parsed.options)
    if ((o.string_key == "command" || o.string_key == "args") && o.position_key < 0)
      throw qsdk::Error(ErrorCategory::usage, "qhost",
                        "unrecognised option '" + (o.original_tokens.empty() ? o.string_key : o.original_tokens[0]) +
                            "'",
                        "the command is a plain word: `qhost <command> [options]`, e.g. `qhost list`");
  const std::string command = vm["command"].as<std::string>();
  if (std::find(kCommands.begin(), kCommands.end(), command) == kCommands.end()) {
    std::string hint = did_you_mean(command, kCommands);
    throw qsdk::Error(ErrorCategory::usage, "qhost", "unknown command '" + command + "'",
                      (hint.empty() ? "" : hint + " ") + "commands: " + join(kCommands));
  }
  // Everything after the command that the global parser did not take.
  std::vector<std::string> args = po::collect_unrecognized(parsed.options, po::include_positional);
  auto command_word = std::find(args.begin(), args.end(), command);
  if (command_word != args.end()) args.erase(command_word);
  const bool help = vm.count("help") > 0;

  init_logging(g.log_level);
  if (command == "report") return report_command(args, help);  // (sweep) cli_sweep.cpp
  if (command == "sweep") {
    std::vector<std::string> child_globals{"--log-level", g.log_level};
    for (const auto& p : g.plugin_path) child_globals.insert(child_globals.end(), {"--plugin-path", p});
    return sweep_command(args, help, child_globals);
  }
  Registry registry;
  PluginLoader loader(registry);
  loader.add_cli_dirs(g.plugin_path);

  po::options_description opts(command + " options");
  po::positional_options_description pos;
  std::vector<std::string> overrides;

  if (command == "list") {
    std::string kind_name;
    opts.add_options()("kind", po::value<std::string>(&kind_name),
                       "only this kind (quantizer, model, trick, scheduler, dataset)");
    if (help) return print_help(command, "[--kind KIND]", opts, globals), 0;
    auto cvm = parse_command(command, args, opts, pos);
    std::optional<qsdk::Kind> kind;
    if (!kind_name.empty()) {
      kind = qsdk::kind_from_string(kind_name);
      if (!kind) {
        std::vector<std::string> kinds;
        for (auto k : qsdk::kAllKinds) kinds.push_back(qsdk::to_string(k));
        std::string hint = did_you_mean(kind_name, kinds);
        throw qsdk::Error(ErrorCategory::usage, "--kind", "unknown kind '" + kind_name + "'",
                          (hint.empty() ? "" : hint + " ") + "kinds: " + join(kinds));
      }
    }
    auto errors = loader.load_all();
    print_components(std::cout, registry, kind);
    if (loader.loaded().empty() && errors.empty())
      std::cerr << "no plugins found; searched: " << join(loader.search_path()) << std::endl;
    report_load_failures(errors);
    return errors.empty() ? 0 : exit_code(ErrorCategory::plugin);
  }

  if (command == "describe") {
    opts.add_options()("component", po::value<std::string>(), "KIND/NAME, e.g. quantizer/lsq, or a section name");
    pos.add("component", 1);
    if (help) return print_help(command, "KIND/NAME", opts, globals), 0;
    auto cvm = parse_command(command, args, opts, pos);
    require(cvm, command, "component", "KIND/NAME argument");
    auto errors = loader.load_all();
    report_load_failures(errors);
    print_description(std::cout, registry, cvm["component"].as<std::string>());
    return errors.empty() ? 0 : exit_code(ErrorCategory::plugin);
  }

  if (command == "check-plugin") {
    opts.add_options()("plugin", po::value<std::string>(), "plugin name or path of a libqplug_<name>.so");
    pos.add("plugin", 1);
    if (help) return print_help(command, "NAME_OR_PATH", opts, globals), 0;
    auto cvm = parse_command(command, args, opts, pos);
    require(cvm, command, "plugin", "plugin name or path");
    check_plugin(std::cout, registry, loader, cvm["plugin"].as<std::string>());
    return 0;
  }

  // Commands on an experiment file.
  opts.add_options()("set", po::value<std::vector<std::string>>(&overrides)->composing(),
                     "override a key: --set a.b=value (value parsed as TOML; bare words are strings)");
  if (command == "check") {
    opts.add_options()("file", po::value<std::string>(), "experiment TOML file")(
        "print", "print the resolved configuration (resolved.toml) on success")(
        "synthetic", "random data of the experiment's sample shape and class count in place of its dataset");
    pos.add("file", 1);
    if (help) return print_help(command, "FILE.toml [--set KEY=VALUE]... [--synthetic] [--print]", opts, globals), 0;
    auto cvm = parse_command(command, args, opts, pos);
    require(cvm, command, "file", "experiment file");
    auto config = Config::load(cvm["file"].as<std::string>(), overrides);
    if (cvm.count("synthetic")) config.use_synthetic_data();
    config.validate(registry, loader, /*load_everything=*/true);
    if (cvm.count("print"))
      std::cout << config.to_toml();
    else
    {
      std::vector<std::string> names;
      for (const auto& p : loader.loaded()) names.push_back(p.name);
      std::cout << config.path() << ": OK (plugins loaded: " << (names.empty() ? "none" : join(names)) << ")\n";
    }
    return 0;
  }

  if (command == "run") {
    RunOptions ro;
    opts.add_options()("file", po::value<std::string>(), "experiment TOML file")("resume", po::bool_switch(&ro.resume),
                                                                                 "continue from <run dir>/last.h5")(
        "smoke", po::bool_switch(&ro.smoke), "two training steps and two evaluation batches")(
        "synthetic", "random data of the experiment's sample shape and class count in place of its dataset; absent "
                     "init_from/teacher checkpoints leave those networks at their initialisation")(
        "out", po::value<std::string>(&ro.out_dir), "run folder (default <out_dir>/<name>)")(
        "nproc", po::value<int>(&ro.nproc)->default_value(1), "local worker processes")(
        "allow-nonfinite", po::bool_switch(&ro.allow_nonfinite),
        "load checkpoints (resume, init_from, KD teacher) whose parameters hold NaN/inf (debugging)")(
        "overwrite", po::bool_switch(&ro.overwrite), "replace a run already in the run folder (deletes its files)")(
        "reset-optimizer", po::bool_switch(&ro.reset_optimizer),
        "--resume from a checkpoint without optimizer state (momentum restarts from zero)");
    pos.add("file", 1);
    if (help)
      return print_help(command,
                        "FILE.toml [--set KEY=VALUE]... [--resume [--reset-optimizer]] [--overwrite] [--smoke] "
                        "[--synthetic] [--out DIR] [--nproc N] [--allow-nonfinite]",
                        opts, globals),
             0;
    auto cvm = parse_command(command, args, opts, pos);
    require(cvm, command, "file", "experiment file");
    if (ro.overwrite && ro.resume)
      throw qsdk::Error(ErrorCategory::usage, "--overwrite", "cannot be combined with --resume",
                        "--resume continues the run in the folder, --overwrite replaces it: pick one");
    if (ro.reset_optimizer && !ro.resume)
      throw qsdk::Error(ErrorCategory::usage, "--reset-optimizer", "only applies to --resume",
                        "add --resume, or drop --reset-optimizer");
    if (ro.nproc < 1)
      throw qsdk::Error(ErrorCategory::usage, "--nproc", std::to_string(ro.nproc) + " is not a process count",
                        "use --nproc 1 or more");
    auto config = Config::load(cvm["file"].as<std::string>(), overrides);
    if (cvm.count("synthetic")) config.use_synthetic_data();
    config.validate(registry, loader);
    if (ro.nproc > 1) {
      ro.rank_args = {"--log-level", g.log_level};
      for (const auto& p : g.plugin_path) ro.rank_args.insert(ro.rank_args.end(), {"--plugin-path", p});
      ro.rank_args.push_back("run");
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--nproc") {
          ++i;
          continue;
        }
        if (args[i].rfind("--nproc=", 0) == 0) continue;
        ro.rank_args.push_back(args[i]);
      }
    }
    int rc = run_experiment(config, registry, ro);
    flush_logs();
    return rc;
  }

  if (command == "export") {
    ExportOptions xo;
    std::string batch = "dynamic";
    opts.add_options()("checkpoint", po::value<std::string>(&xo.checkpoint), "HDF5 checkpoint or run folder (its best.h5)")(
        "output,o", po::value<std::string>(&xo.output), "the ONNX file (or integer model) to write")(
        "format", po::value<std::string>(&xo.format)->default_value("onnx"),
        "onnx, or qtool: the HDF5 integer model (bit-packed codes, scales; docs/integer-model.md)")(
        "opset", po::value<int64_t>(&xo.opset)->default_value(13),
        "ONNX opset, 13 to 17 (13: per-channel QuantizeLinear/DequantizeLinear)")(
        "batch", po::value<std::string>(&batch)->default_value("dynamic"),
        "batch dimension of `input` and `logits`: dynamic, or a fixed N")(
        "reference", po::value<std::string>(&xo.reference),
        "also write PREFIX.input.npy (a seeded N(0,1) batch) and PREFIX.logits.npy (qhost's logits of it)")(
        "reference-batch", po::value<int64_t>(&xo.reference_batch)->default_value(4), "samples in the reference batch")(
        "reference-seed", po::value<uint64_t>(&xo.reference_seed)->default_value(0), "seed of the reference batch")(
        "synthetic", po::bool_switch(&xo.synthetic),
        "stand-in data of the checkpoint's shape: the dataset's files are not needed")(
        "trust-checkpoint-plugins", po::bool_switch(&xo.trust_checkpoint_plugins),
        "load plugin paths named by the checkpoint's stored configuration (they run code: trusted files only)");
    pos.add("checkpoint", 1);
    if (help)
      return print_help(command,
                        "CHECKPOINT.h5|RUN_DIR -o MODEL.onnx|MODEL.qtool.h5 [--format onnx|qtool] [--opset N] "
                        "[--batch dynamic|N] [--set KEY=VALUE]... [--reference PREFIX] [--synthetic] "
                        "[--trust-checkpoint-plugins]",
                        opts, globals),
             0;
    auto cvm = parse_command(command, args, opts, pos);
    require(cvm, command, "checkpoint", "checkpoint file or run folder");
    require(cvm, command, "output", "output file (-o MODEL.onnx)");
    if (batch != "dynamic") {
      int64_t n = 0;
      const auto r = std::from_chars(batch.data(), batch.data() + batch.size(), n);
      if (r.ec != std::errc() || r.ptr != batch.data() + batch.size() || n < 1)
        throw qsdk::Error(ErrorCategory::usage, "--batch", "'" + batch + "' is neither 'dynamic' nor a batch size",
                          "use --batch dynamic or --batch N with N >= 1");
      xo.batch = n;
    }
    xo.overrides = overrides;
    int rc = export_checkpoint(registry, loader, xo);
    flush_logs();
    return rc;
  }

  // eval
  EvalOptions eo;
  opts.add_options()("checkpoint", po::value<std::string>(&eo.checkpoint),
                     "HDF5 checkpoint, or an integer model of qhost export --format qtool")(
      "config", po::value<std::string>(&eo.config_file),
      "experiment TOML describing model, quantizers and data (default: the configuration stored in the checkpoint; "
      "needed for converted weights)")(
      "synthetic", po::bool_switch(&eo.synthetic), "random data of the same sample shape and class count")(
      "trust-checkpoint-plugins", po::bool_switch(&eo.trust_checkpoint_plugins),
      "load plugin paths named by the checkpoint's stored configuration (they run code: trusted files only)")(
      "allow-nonfinite", po::bool_switch(&eo.allow_nonfinite), "evaluate parameters holding NaN/inf (debugging)")(
      "max-batches", po::value<int64_t>(&eo.max_batches)->default_value(0),
      "evaluate only the first N batches of the evaluation set (data.eval_batch_size samples each; 0 = all)")(
      "dump-logits", po::value<std::string>(&eo.dump_logits),
      "also write the logits as FILE.npy (float32 [samples, classes], in the evaluation set's order)");
  pos.add("checkpoint", 1);
  if (help)
    return print_help(command,
                      "CHECKPOINT.h5|MODEL.qtool.h5 [--config EXPERIMENT.toml] [--set KEY=VALUE]... [--synthetic] "
                      "[--trust-checkpoint-plugins] [--allow-nonfinite] [--max-batches N] [--dump-logits FILE.npy]",
                      opts,
                      globals),
           0;
  auto cvm = parse_command(command, args, opts, pos);
  require(cvm, command, "checkpoint", "checkpoint file");
  if (eo.max_batches < 0)
    throw qsdk::Error(ErrorCategory::usage, "--max-batches", std::to_string(eo.max_batches) + " is negative",
                      "use --max-batches N with N >= 1, or 0 for the whole evaluation set");
  eo.overrides = overrides;
  int rc = eval_checkpoint(registry, loader, eo);
  flush_logs();
  return rc;
}

}  // namespace qhost
