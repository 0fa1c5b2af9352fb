# cmake -P script behind the platform.consumer test:
# 1. install this qtool build (SDK, headers, qhost, CMake package) into a temporary prefix,
# 2. configure and build tests/consumer against that prefix with find_package(qtool),
# 3. load the result with the installed qhost (check-plugin, describe), then
#    install the plugin into the prefix and find it through the install folder (list).
foreach(v QTOOL_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CMAKE_GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "consumer_test.cmake: -D${v}=... is required")
  endif()
endforeach()
set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: ${name} failed (exit ${rc})\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

function(expect_in text part)
  string(FIND "${text}" "${part}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "consumer test: expected to find\n  ${part}\nin:\n${text}")
  endif()
endfunction()

# Only the default component: the SDK and qhost, not the plugins of this tree
# (the consumer must stand on the installed SDK alone).
step("install qtool" ${CMAKE_COMMAND} --install ${QTOOL_BUILD_DIR} --prefix ${prefix} --component Unspecified)
foreach(f bin/qhost include/qsdk/plugin.hpp lib/cmake/qtool/qtoolConfig.cmake lib/cmake/qtool/QtoolPlugin.cmake)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "consumer test: ${prefix}/${f} was not installed")
  endif()
endforeach()

set(launcher "")
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${CMAKE_GENERATOR}
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release ${launcher})
step("build consumer" ${CMAKE_COMMAND} --build ${build})
set(plugin ${build}/plugins/libqplug_my_method.so)

step("qhost check-plugin" ${prefix}/bin/qhost check-plugin ${plugin})
expect_in("${step_output}" "plugin 'my_method' 0.1.0 (${plugin}): loaded, stamp and schemas OK")
expect_in("${step_output}" "ok  quantizer/my_uniform: forward/backward on weight 4 levels, activation 4 levels")

step("qhost describe" ${prefix}/bin/qhost describe quantizer/my_uniform --plugin-path ${build}/plugins)
expect_in("${step_output}" "quantizer/my_uniform  uniform quantizer on [-clip, clip]")
expect_in("${step_output}" "provider: plugin 'my_method' 0.1.0 (${plugin})")
expect_in("${step_output}" "bits  int    2        [1, 8]")

step("install consumer" ${CMAKE_COMMAND} --install ${build} --prefix ${prefix})
step("qhost list" ${prefix}/bin/qhost list)
expect_in("${step_output}" "quantizer/my_uniform  uniform quantizer on [-clip, clip] / [0, clip]  [my_method 0.1.0]")
message(STATUS "consumer test passed: ${prefix}")
