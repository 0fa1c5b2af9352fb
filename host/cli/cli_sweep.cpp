// `qhost sweep` and `qhost report`: option parsing; the work is in sweep.cpp
// and run_results.cpp.
#include "cli/cli_sweep.hpp"

#include "sweep/run_results.hpp"
#include "sweep/sweep.hpp"

#include <qsdk/error.hpp>

#include <boost/program_options.hpp>

#include <fstream>
#include <iostream>

namespace po = boost::program_options;

namespace qhost {
namespace {

po::variables_map parse(const std::string& command, const std::vector<std::string>& args,
                        const po::options_description& options, const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw qsdk::Error(qsdk::ErrorCategory::usage, "qhost " + command, e.what(), "see `qhost " + command + " --help`");
  }
  return vm;
}

}  // namespace

int sweep_command(const std::vector<std::string>& args, bool help, const std::vector<std::string>& global_args) {
  SweepOptions so;
  so.global_args = global_args;
  po::options_description opts("sweep options");
  opts.add_options()("file", po::value<std::string>(), "sweep TOML: base = \"exp.toml\", out_dir, [grid]")(
      "out", po::value<std::string>(&so.out_dir), "parent folder of the point run folders (overrides out_dir)");
  po::positional_options_description pos;
  pos.add("file", 1);
  if (help) {
    std::cout << "usage: qhost sweep SWEEP.toml [--out DIR]\n\n"
              << "Runs `qhost run BASE --set KEY=VALUE...` for every point of [grid] (cartesian product)\n"
              << "into <out_dir>/<name>__key=value__...; finished points are skipped on a rerun; a\n"
              << "failed point is reported and the sweep goes on (exit status 1 at the end).\n\n"
              << opts;
    return 0;
  }
  auto vm = parse("sweep", args, opts, pos);
  if (!vm.count("file"))
    throw qsdk::Error(qsdk::ErrorCategory::usage, "qhost sweep", "missing sweep file", "see `qhost sweep --help`");
  return run_sweep(SweepSpec::load(vm["file"].as<std::string>()), so);
}

int report_command(const std::vector<std::string>& args, bool help) {
  std::string csv;
  po::options_description opts("report options");
  opts.add_options()("dirs", po::value<std::vector<std::string>>(), "run folders, or folders of run folders")(
      "csv", po::value<std::string>(&csv), "also write the table as CSV to this file");
  po::positional_options_description pos;
  pos.add("dirs", -1);
  if (help) {
    std::cout << "usage: qhost report RUN_DIR... [--csv FILE]\n\n"
              << "Prints a Markdown table (Dataset | Method | Model | A/W | Top-1 | Flags | Config) of\n"
              << "the runs; Top-1 is the best evaluation top-1 of metrics.jsonl.\n\n"
              << opts;
    return 0;
  }
  auto vm = parse("report", args, opts, pos);
  if (!vm.count("dirs"))
    throw qsdk::Error(qsdk::ErrorCategory::usage, "qhost report", "missing run folder", "see `qhost report --help`");
  std::vector<RunSummary> rows;
  for (const auto& d : vm["dirs"].as<std::vector<std::string>>())
    for (const auto& run : find_run_dirs(d)) rows.push_back(summarize_run(run));
  std::cout << report_markdown(rows);
  if (!csv.empty()) {
    std::ofstream out(csv);
    if (!out)
      throw qsdk::Error(qsdk::ErrorCategory::usage, "--csv", "cannot write '" + csv + "'", "check the folder exists");
    out << report_csv(rows);
  }
  return 0;
}

}  // namespace qhost
