# The host's area libraries (host/<area>/, docs/README.md#host): qhost_flags,
# the one set of include path and definitions every area and every consumer
# compiles with (so one precompiled <torch/torch.h> serves all areas), and
# qhost_add_area(). Included by host/CMakeLists.txt and by tools/gpu, which
# builds the areas it needs against a CUDA LibTorch.
#
# Expects QTOOL_ROOT (the repository), PROJECT_VERSION, QTOOL_INSTALL_PLUGIN_DIR.
if(TARGET qhost_flags)
  return()
endif()

add_library(qhost_flags INTERFACE)
target_include_directories(qhost_flags INTERFACE ${QTOOL_ROOT}/host)
target_link_libraries(qhost_flags INTERFACE qtool::sdk torch spdlog::spdlog Threads::Threads)
# BOOST_DLL_USE_STD_FS: Boost.DLL without Boost.Filesystem.
target_compile_definitions(qhost_flags INTERFACE BOOST_DLL_USE_STD_FS
  QTOOL_VERSION="${PROJECT_VERSION}"
  QTOOL_INSTALL_PLUGIN_SUBDIR="${QTOOL_INSTALL_PLUGIN_DIR}")
if(QTOOL_WITH_CUDA)
  target_compile_definitions(qhost_flags INTERFACE QTOOL_WITH_CUDA=1)
endif()

if(QTOOL_USE_PCH)
  # (file(CONFIGURE) rewrites it only when it changes, so a reconfigure rebuilds nothing.)
  file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/qhost_pch.cpp CONTENT "// PCH carrier of the host areas\n")
  add_library(qhost_pch OBJECT ${PROJECT_BINARY_DIR}/qhost_pch.cpp)
  target_link_libraries(qhost_pch PRIVATE qhost_flags)
  target_precompile_headers(qhost_pch PRIVATE <torch/torch.h>)
endif()

# qhost_add_area(<area> SOURCES ... [PUBLIC ...] [PRIVATE ...]): the static
# library qhost_<area> (alias qhost::<area>) of host/<area>/.
function(qhost_add_area area)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(qhost_${area} STATIC ${ARG_SOURCES})
  add_library(qhost::${area} ALIAS qhost_${area})
  target_link_libraries(qhost_${area} PUBLIC qhost_flags ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
  if(QTOOL_USE_PCH)
    target_precompile_headers(qhost_${area} REUSE_FROM qhost_pch)
  endif()
endfunction()
