# Fails when a host source other than test_seams.cpp reads a QTOOL_TEST_*
# variable itself: every test hook goes through host/platform/test_seams.hpp, the
# one seam a release build compiles out.
#   cmake -DSRC=<host> -P no_stray_test_hooks.cmake
file(GLOB_RECURSE _files ${SRC}/*.cpp ${SRC}/*.hpp)
set(_bad)
foreach(_f IN LISTS _files)
  get_filename_component(_name ${_f} NAME)
  if(_name MATCHES "^test_seams\\.(cpp|hpp)$")
    continue()
  endif()
  file(STRINGS ${_f} _hits REGEX "getenv[ \t]*\\([^)]*QTOOL_TEST_")
  if(_hits)
    list(APPEND _bad "${_name}: ${_hits}")
  endif()
endforeach()
if(_bad)
  string(REPLACE ";" "\n  " _msg "${_bad}")
  message(FATAL_ERROR "QTOOL_TEST_* read outside host/platform/test_seams.cpp (use test_seams::value):\n  ${_msg}")
endif()
message(STATUS "every QTOOL_TEST_* hook goes through test_seams")
