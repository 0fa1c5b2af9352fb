#include "files.hpp"

#include <filesystem>

namespace qtool_test {

std::string fresh_dir(const std::string& root, const std::string& name) {
  const std::string dir = root + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace qtool_test
