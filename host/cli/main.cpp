// qhost: the CLI (host/cli); the work is done by the host areas it links.
#include "cli/cli.hpp"
#include "platform/allocator.hpp"
#include "platform/errors.hpp"

int main(int argc, char** argv) {
  qhost::tune_allocator();
  return qhost::report_errors(qhost::cli_main, argc, argv);
}
