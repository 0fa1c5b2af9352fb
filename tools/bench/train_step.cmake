# The training-step benchmark (include() from tools/bench/CMakeLists.txt or the
# root CMakeLists). Run: QTOOL_PLUGIN_PATH=<build>/plugins <build>/tools/bench/train_step
add_executable(train_step ${CMAKE_CURRENT_LIST_DIR}/train_step.cpp)
target_link_libraries(train_step PRIVATE qhost_train)
if(TARGET qplug_resnet)
  add_dependencies(train_step qplug_resnet)
endif()
if(TARGET qplug_lsq)
  add_dependencies(train_step qplug_lsq)
endif()

# (schedule) The distillation step-time benchmark (plain vs trick/kd step, FP and
# LSQ 2/2 students). Run: QTOOL_PLUGIN_PATH=<build>/plugins <build>/kd_step
add_executable(kd_step ${CMAKE_CURRENT_LIST_DIR}/kd_step.cpp)
target_link_libraries(kd_step PRIVATE qhost_train)
foreach(_kd_step_plugin qplug_resnet qplug_lsq qplug_kd)
  if(TARGET ${_kd_step_plugin})
    add_dependencies(kd_step ${_kd_step_plugin})
  endif()
endforeach()

# The fake-quantized forward that tools/bench/export_ort.sh times against ONNX
# Runtime (the exported model). Run: tools/bench/export_ort.sh <build>
add_executable(fakequant_forward ${CMAKE_CURRENT_LIST_DIR}/fakequant_forward.cpp)
target_link_libraries(fakequant_forward PRIVATE qhost_run)
