# Facts about the LibTorch we build against, shared by the build tree and the
# installed qtoolConfig.cmake (so out-of-tree plugins get the same stamp).
set(QTOOL_WITH_CUDA OFF)
set(QTOOL_TORCH_CUDA 0)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(QTOOL_WITH_CUDA ON)
  if(CUDAToolkit_VERSION_MAJOR)
    math(EXPR QTOOL_TORCH_CUDA "${CUDAToolkit_VERSION_MAJOR} * 1000 + ${CUDAToolkit_VERSION_MINOR} * 10")
  elseif(CUDA_VERSION_MAJOR)
    math(EXPR QTOOL_TORCH_CUDA "${CUDA_VERSION_MAJOR} * 1000 + ${CUDA_VERSION_MINOR} * 10")
  else()
    set(QTOOL_TORCH_CUDA 1)
  endif()
endif()

# ATen's at::parallel_for is an inline template whose OpenMP pragma only takes
# effect in code compiled with -fopenmp: without it every parallel_for in qtool
# and its plugins (the quantizer kernels above all) silently runs on one thread.
# qtool::sdk therefore carries OpenMP when LibTorch's parallel backend is OpenMP.
set(QTOOL_TORCH_OPENMP OFF)
foreach(_qtool_inc IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${_qtool_inc}/ATen/Config.h")
    file(STRINGS "${_qtool_inc}/ATen/Config.h" _qtool_omp REGEX "^#define AT_PARALLEL_OPENMP 1")
    if(_qtool_omp)
      set(QTOOL_TORCH_OPENMP ON)
    endif()
    break()
  endif()
endforeach()
