// qhost: the CLI. Everything else lives in qhost_core.
#include "allocator.hpp"
#include "cli.hpp"
#include "errors.hpp"

int main(int argc, char** argv) {
  qhost::tune_allocator();
  return qhost::report_errors(qhost::cli_main, argc, argv);
}
