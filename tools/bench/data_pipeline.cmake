# The input-pipeline benchmark (include() from the root CMakeLists; not a test):
# imagefolder decode + RandomResizedCrop 224 + flip + normalize through
# qhost::DataLoader. Run: QTOOL_PLUGIN_PATH=<build>/plugins <build>/data_pipeline_bench
add_executable(data_pipeline_bench ${CMAKE_CURRENT_LIST_DIR}/data_pipeline.cpp)
target_link_libraries(data_pipeline_bench PRIVATE qhost_data qtool_sample_files)
if(TARGET qplug_imagefolder)
  add_dependencies(data_pipeline_bench qplug_imagefolder)
endif()
