#include "platform/version_info.hpp"

#include <qsdk/version.hpp>

namespace qhost {

qtool_build_stamp host_stamp() { return QSDK_CURRENT_STAMP; }

std::string torch_description(const qtool_build_stamp& stamp) {
  std::string cuda = "CPU";
  if (stamp.torch_cuda)
    cuda = "CUDA " + std::to_string(stamp.torch_cuda / 1000) + "." + std::to_string((stamp.torch_cuda % 1000) / 10);
  return qsdk::version_string(stamp.torch_version) + " (" + cuda + ")";
}

std::string version_text() {
  auto s = host_stamp();
  return std::string("qhost (qtool) ") + QTOOL_VERSION + "\n" +
         "SDK " + qsdk::version_string(qsdk::sdk_version()) + ", plugin ABI " + std::to_string(s.plugin_abi) + "\n" +
         "LibTorch " + torch_description(s) + "\n" +
         "compiler " + s.compiler + ", cxx11-abi " + std::to_string(s.glibcxx_cxx11_abi) + "\n";
}

}  // namespace qhost
