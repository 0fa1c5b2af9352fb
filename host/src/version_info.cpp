#include <qsdk/version.hpp>
namespace qhost { qtool_build_stamp host_stamp() { return QSDK_CURRENT_STAMP; } }
