# qtool_add_plugin(<name> SOURCES ... [LINK_LIBRARIES ...] [EXAMPLE file.toml])
#
# Makes the MODULE library libqplug_<name>.so: hidden visibility, every symbol
# resolved at link time (--no-undefined), linked to qtool::sdk and torch, placed
# in the build tree's plugin folder and installed into lib/qtool/plugins.
# In the qtool build tree it also adds CTest checks: `qhost check-plugin` on the
# library and, with EXAMPLE, a two-step run of the example config.

# A precompiled LibTorch header shared by all plugins (they are built with the
# same flags, so one PCH serves every plugin translation unit).
function(_qtool_plugin_pch_target out)
  if(NOT TARGET qtool_plugin_pch)
    file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/qtool_plugin_pch.cpp CONTENT "// PCH carrier\n")  # unchanged: not recompiled
    add_library(qtool_plugin_pch OBJECT ${CMAKE_BINARY_DIR}/qtool_plugin_pch.cpp)
    _qtool_plugin_common(qtool_plugin_pch)
    target_precompile_headers(qtool_plugin_pch PRIVATE <torch/torch.h>)
  endif()
  set(${out} qtool_plugin_pch PARENT_SCOPE)
endfunction()

function(_qtool_plugin_common target)
  if(TARGET qtool::sdk)
    target_link_libraries(${target} PRIVATE qtool::sdk)
  endif()
  target_link_libraries(${target} PRIVATE torch)
  target_compile_features(${target} PRIVATE cxx_std_17)
  set_target_properties(${target} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
endfunction()

function(qtool_add_plugin name)
  cmake_parse_arguments(ARG "" "EXAMPLE" "SOURCES;LINK_LIBRARIES" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "qtool_add_plugin(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS} "
                        "(it takes SOURCES, LINK_LIBRARIES and EXAMPLE; the version is QSDK_PLUGIN's)")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "qtool_add_plugin(${name}): SOURCES is required")
  endif()
  set(target qplug_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  _qtool_plugin_common(${target})
  if(ARG_LINK_LIBRARIES)
    target_link_libraries(${target} PRIVATE ${ARG_LINK_LIBRARIES})
  endif()
  target_link_options(${target} PRIVATE LINKER:--no-undefined LINKER:--exclude-libs,ALL)
  if(QTOOL_USE_PCH OR NOT DEFINED QTOOL_USE_PCH)
    _qtool_plugin_pch_target(pch)
    target_precompile_headers(${target} REUSE_FROM ${pch})
  endif()
  if(NOT QTOOL_PLUGIN_DIR)
    set(QTOOL_PLUGIN_DIR ${CMAKE_BINARY_DIR}/plugins)
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME qplug_${name}
    LIBRARY_OUTPUT_DIRECTORY ${QTOOL_PLUGIN_DIR}
    INSTALL_RPATH "$ORIGIN/../..")
  if(TARGET qtool_plugins)
    add_dependencies(qtool_plugins ${target})
  endif()
  if(QTOOL_INSTALL_PLUGIN_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION ${QTOOL_INSTALL_PLUGIN_DIR} COMPONENT plugins)
  else()
    install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/qtool/plugins)
  endif()
  if(TARGET qhost AND QTOOL_BUILD_TESTS)
    add_test(NAME plugin.${name}.check
             COMMAND qhost check-plugin $<TARGET_FILE:${target}>)
    if(ARG_EXAMPLE)
      add_test(NAME plugin.${name}.example
               COMMAND qhost run ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_EXAMPLE} --smoke --overwrite
                       --out ${CMAKE_CURRENT_BINARY_DIR}/example-run)
    endif()
  endif()
endfunction()
