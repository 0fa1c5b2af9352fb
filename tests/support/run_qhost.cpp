#include "run_qhost.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qtool_test {

QhostResult run_qhost(const std::string& exe, const std::string& work_dir, const std::string& args,
                      const std::string& env) {
  std::filesystem::create_directories(work_dir);
  const std::string log = work_dir + "/last_command." + std::to_string(::getpid()) + ".txt";
  const std::string cmd = env + " " + exe + " " + args + " > " + log + " 2>&1";
  QhostResult r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = read_text(log);
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qtool_test
