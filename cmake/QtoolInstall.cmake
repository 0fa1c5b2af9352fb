# Installs the SDK as a CMake package so out-of-tree plugins can use
# find_package(qtool) + qtool_add_plugin().
include(CMakePackageConfigHelpers)
set(QTOOL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qtool)
install(EXPORT qtoolTargets NAMESPACE qtool:: DESTINATION ${QTOOL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qtoolConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qtoolConfig.cmake INSTALL_DESTINATION ${QTOOL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qtoolConfigVersion.cmake
  COMPATIBILITY ExactVersion)
install(FILES ${PROJECT_BINARY_DIR}/qtoolConfig.cmake ${PROJECT_BINARY_DIR}/qtoolConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/QtoolPlugin.cmake DESTINATION ${QTOOL_CMAKE_DIR})
