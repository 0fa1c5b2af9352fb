#include "platform/logging.hpp"

#include <qsdk/error.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace qhost {

void init_logging(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str maps unknown names to `off`; only accept it when asked for.
  if (lvl == spdlog::level::off && level != "off")
    throw qsdk::Error(qsdk::ErrorCategory::usage, "--log-level", "unknown level '" + level + "'",
                      "use one of trace, debug, info, warn, error, critical, off");
  // Logs go to stderr so that stdout carries only command output (list, describe).
  spdlog::drop("qhost");  // idempotent: a second call replaces the logger
  auto logger = spdlog::stderr_color_mt("qhost");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(lvl);
}

void add_log_file(const std::string& path) {
  auto logger = spdlog::default_logger();
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    logger->sinks().push_back(std::move(sink));
  } catch (const spdlog::spdlog_ex& e) {
    throw qsdk::Error(qsdk::ErrorCategory::runtime, path, std::string("cannot open log file: ") + e.what());
  }
}

void flush_logs() { spdlog::default_logger()->flush(); }

}  // namespace qhost
