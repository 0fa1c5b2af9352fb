# platform.sdk_readme: sdk/README.md must show tests/consumer verbatim, so the
# documented example is the one CTest builds.
file(READ ${README} readme)
foreach(f CMakeLists.txt my_method.cpp)
  file(READ ${CONSUMER_DIR}/${f} text)
  string(FIND "${readme}" "${text}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "sdk/README.md does not contain tests/consumer/${f} verbatim: update the README")
  endif()
endforeach()
