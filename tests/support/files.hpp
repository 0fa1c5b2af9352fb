// files.hpp - scratch folders of the tests that write runs to disk.
#pragma once

#include <string>

namespace qtool_test {

/// `root`/`name`, removed with everything in it (it may not exist yet), so a
/// rerun of a test never sees the previous run's files. The folder itself is
/// not created: qhost creates its --out folder.
std::string fresh_dir(const std::string& root, const std::string& name);

}  // namespace qtool_test
