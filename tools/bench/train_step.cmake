# The training-step benchmark (include() from tools/bench/CMakeLists.txt or the
# root CMakeLists). Run: QTOOL_PLUGIN_PATH=<build>/plugins <build>/tools/bench/train_step
add_executable(train_step ${CMAKE_CURRENT_LIST_DIR}/train_step.cpp)
target_link_libraries(train_step PRIVATE qhost_core)
if(TARGET qplug_resnet)
  add_dependencies(train_step qplug_resnet)
endif()
if(TARGET qplug_lsq)
  add_dependencies(train_step qplug_lsq)
endif()
