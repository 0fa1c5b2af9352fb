# qtool_add_test(<name> SOURCES ... [LINK_LIBRARIES ...] [LABELS ...])
# One GoogleTest executable whose cases CTest discovers individually.
include(GoogleTest)
function(qtool_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK_LIBRARIES;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE GTest::gtest GTest::gtest_main ${ARG_LINK_LIBRARIES})
  if(QTOOL_USE_PCH AND TARGET qhost_core)
    target_precompile_headers(${name} REUSE_FROM qtool_test_pch)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 120
    PROPERTIES ENVIRONMENT "QTOOL_PLUGIN_PATH=${QTOOL_PLUGIN_DIR};QTOOL_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
               LABELS "${ARG_LABELS}")
endfunction()
