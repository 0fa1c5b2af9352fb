# qtool_add_test(<name> SOURCES ... [LINK_LIBRARIES ...] [LABELS ...])
# One GoogleTest executable whose cases CTest discovers individually.
include(GoogleTest)

# Tests that link a host area (qhost_<area>) share one precompiled LibTorch +
# GoogleTest header (the areas share their flags, qhost_flags, so one PCH serves them all).
function(_qtool_test_pch_target)
  if(NOT TARGET qtool_test_pch)
    file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/qtool_test_pch.cpp CONTENT "// PCH carrier\n")  # unchanged: not recompiled
    add_library(qtool_test_pch OBJECT ${CMAKE_BINARY_DIR}/qtool_test_pch.cpp)
    target_link_libraries(qtool_test_pch PRIVATE GTest::gtest qhost_flags)
    target_precompile_headers(qtool_test_pch PRIVATE <torch/torch.h> <gtest/gtest.h>)
  endif()
endfunction()

function(qtool_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LINK_LIBRARIES;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE GTest::gtest GTest::gtest_main ${ARG_LINK_LIBRARIES})
  set(_links_host FALSE)
  foreach(_lib IN LISTS ARG_LINK_LIBRARIES)
    if(_lib MATCHES "^qhost_")
      set(_links_host TRUE)
    endif()
  endforeach()
  if(QTOOL_USE_PCH AND TARGET qhost_flags AND _links_host)
    _qtool_test_pch_target()
    target_precompile_headers(${name} REUSE_FROM qtool_test_pch)
  endif()
  # Locations are compiled in: gtest_discover_tests splits a ';' inside a
  # property value, so ENVIRONMENT can carry one variable only.
  target_compile_definitions(${name} PRIVATE QTOOL_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             QTOOL_TEST_PLUGIN_DIR="${QTOOL_PLUGIN_DIR}")
  set(_labels)
  if(ARG_LABELS)
    set(_labels LABELS ${ARG_LABELS})
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 120
    PROPERTIES ENVIRONMENT "QTOOL_PLUGIN_PATH=${QTOOL_PLUGIN_DIR}" ${_labels})
endfunction()
