// qhost: the CLI. Everything else lives in qhost_core.
#include "cli.hpp"
#include "errors.hpp"

int main(int argc, char** argv) { return qhost::report_errors(qhost::cli_main, argc, argv); }
