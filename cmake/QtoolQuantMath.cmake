# qtool_add_quant_math(<target> SOURCES ... [KERNELS ...] [CUDA <file.cu>]
#                      [CUDA_DEPENDS ...] [LINK_LIBRARIES ...])
#
# The static math library of a quantizer method (plugins/<method>: qplug_<method>_math)
# or of quant_common: PIC, hidden visibility, so the plugin .so that links it
# exports nothing of it, and tests and benchmarks can link it too. Its public
# headers are <folder>/include.
#   SOURCES         ordinary sources (the composed ATen reference, helpers)
#   KERNELS         fused CPU kernel sources, built with -O3 -fno-trapping-math and no PCH
#   CUDA            the method's CUDA kernels: compiled into the library with a CUDA
#                   LibTorch and nvcc (QTOOL_QUANT_CUDA=1 marks such a build), or only
#                   compile-checked (not linked) with a CPU LibTorch when nvcc exists
#   CUDA_DEPENDS    headers the CUDA file includes (reruns the compile check)
#   LINK_LIBRARIES  public link dependencies (quant_common for a method)
#
# Include this module at the top-level directory (before the plugins): CUDA must be
# enabled in a directory common to every target that links a CUDA object.
include_guard(GLOBAL)

get_filename_component(_QTOOL_QUANT_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# Fused CUDA kernels (LSQ, DoReFa, PACT): only with a CUDA LibTorch and nvcc.
# The CPU build never compiles or references them.
set(QTOOL_QUANT_CUDA OFF)
if(QTOOL_WITH_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(QTOOL_QUANT_CUDA ON)
  else()
    message(STATUS "quantizer math: CUDA LibTorch but no nvcc; fused CUDA kernels disabled")
  endif()
endif()

# With a CPU LibTorch but nvcc present (e.g. /usr/local/cuda), still compile the
# CUDA kernels to object files so CI catches errors in them. Debian's CPU
# LibTorch lacks c10's generated cuda_cmake_macros.h; a one-line shim supplies it.
option(QTOOL_CUDA_COMPILE_CHECK "Compile the CUDA kernels when nvcc exists, even for a CPU LibTorch" ON)
set(_QTOOL_QUANT_CUDA_CHECK OFF)
if(NOT QTOOL_WITH_CUDA AND QTOOL_CUDA_COMPILE_CHECK)
  find_program(QTOOL_NVCC nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
  if(QTOOL_NVCC)
    set(_QTOOL_QUANT_CUDA_CHECK ON)
    set(_QTOOL_QUANT_CUDA_SHIM ${CMAKE_BINARY_DIR}/quant_cuda_shim)
    file(WRITE ${_QTOOL_QUANT_CUDA_SHIM}/c10/cuda/impl/cuda_cmake_macros.h
         "#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    set(_QTOOL_QUANT_CUDA_INCS)
    foreach(_d ${TORCH_INCLUDE_DIRS})
      if(NOT _d STREQUAL "/usr/include")  # a system dir given as -I breaks #include_next
        list(APPEND _QTOOL_QUANT_CUDA_INCS -I${_d})
      endif()
    endforeach()
    # One target that checks every method's CUDA file (each adds its own check to it).
    add_custom_target(quant_cuda_compile_check ALL)
    message(STATUS "quantizer math: CPU LibTorch; CUDA kernels are compile-checked with ${QTOOL_NVCC}")
  endif()
endif()

# Adds `cu` to `target` (CUDA build) or a compile check of it (nvcc only); see above.
function(qtool_quant_cuda_sources target cu)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  if(QTOOL_QUANT_CUDA)
    target_sources(${target} PRIVATE ${cu})
    set_source_files_properties(${cu} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    set_target_properties(${target} PROPERTIES CUDA_STANDARD 17 CUDA_SEPARABLE_COMPILATION OFF)
    target_compile_definitions(${target} PRIVATE QTOOL_QUANT_CUDA=1)
  elseif(_QTOOL_QUANT_CUDA_CHECK)
    set(_obj ${CMAKE_CURRENT_BINARY_DIR}/${target}_cuda_check.o)
    add_custom_command(
      OUTPUT ${_obj}
      COMMAND ${QTOOL_NVCC} -std=c++17 -arch=sm_90 -I${_QTOOL_QUANT_CUDA_SHIM} ${_QTOOL_QUANT_CUDA_INCS}
              -I${CMAKE_CURRENT_SOURCE_DIR}/include -I${_QTOOL_QUANT_ROOT}/plugins/quant_common/include
              -I${_QTOOL_QUANT_ROOT}/sdk/include -DQTOOL_QUANT_CUDA=1
              -c ${CMAKE_CURRENT_SOURCE_DIR}/${cu} -o ${_obj}
      DEPENDS ${cu} ${ARG_DEPENDS} ${_QTOOL_QUANT_ROOT}/plugins/quant_common/include/quant_common/cuda_kernels.cuh
              ${_QTOOL_QUANT_ROOT}/plugins/quant_common/include/quant_common/kernels.hpp
      COMMENT "Compile check of ${target}'s CUDA kernels with ${QTOOL_NVCC} (not linked: CPU LibTorch)"
      VERBATIM)
    add_custom_target(${target}_cuda_compile_check DEPENDS ${_obj})
    add_dependencies(quant_cuda_compile_check ${target}_cuda_compile_check)
  endif()
endfunction()

function(qtool_add_quant_math target)
  cmake_parse_arguments(ARG "" "CUDA" "SOURCES;KERNELS;CUDA_DEPENDS;LINK_LIBRARIES" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "qtool_add_quant_math(${target}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  add_library(${target} STATIC ${ARG_SOURCES} ${ARG_KERNELS})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(${target} PUBLIC ${ARG_LINK_LIBRARIES} qtool::sdk torch)
  target_compile_features(${target} PUBLIC cxx_std_17)
  set_target_properties(${target} PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(QTOOL_USE_PCH OR NOT DEFINED QTOOL_USE_PCH)
    _qtool_plugin_pch_target(_pch)
    target_precompile_headers(${target} REUSE_FROM ${_pch})
  endif()
  # The fused CPU loops need the vectoriser at full strength (-O2's "very cheap"
  # cost model leaves them scalar) and branch if-conversion (-fno-trapping-math:
  # only floating-point exception flags may differ, never values). A PCH built with other -O flags is invalid, so
  # these files include only the ATen/autograd headers they need and skip it.
  if(ARG_KERNELS)
    set_source_files_properties(${ARG_KERNELS} PROPERTIES
      SKIP_PRECOMPILE_HEADERS ON COMPILE_OPTIONS "-O3;-fno-trapping-math")
  endif()
  if(ARG_CUDA)
    qtool_quant_cuda_sources(${target} ${ARG_CUDA} DEPENDS ${ARG_CUDA_DEPENDS})
  endif()
endfunction()
