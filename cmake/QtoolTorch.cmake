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
