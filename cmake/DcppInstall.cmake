# `cmake --install`: headers, the layer libraries with exported targets
# (dcpp::dcpp and one per layer, e.g. dcpp::checkpoint), dcppConfig.cmake for
# find_package(dcpp), dcpp.pc for pkg-config, and the dcpp command.
include(CMakePackageConfigHelpers)

set(dcpp_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/dcpp)
get_property(dcpp_layers GLOBAL PROPERTY DCPP_LAYERS)
set(dcpp_layer_targets)
set(dcpp_pc_libs)
foreach(layer ${dcpp_layers})
  list(APPEND dcpp_layer_targets dcpp_${layer})
  # pkg-config links static archives: the higher layers come first.
  list(PREPEND dcpp_pc_libs -ldcpp_${layer})
endforeach()

install(TARGETS ${dcpp_layer_targets} dcpp EXPORT dcppTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/dcpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT dcppTargets NAMESPACE dcpp:: DESTINATION ${dcpp_cmake_dir})
if(TARGET dcpp_cli)
  install(TARGETS dcpp_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

configure_package_config_file(cmake/dcppConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/dcppConfig.cmake
                              INSTALL_DESTINATION ${dcpp_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/dcppConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dcppConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/dcppConfigVersion.cmake
        DESTINATION ${dcpp_cmake_dir})

# pkg-config: the archives, then what they link privately (xxHash, zstd, simdjson,
# libcurl and libcrypto for the s3 layer,
# Open MPI when the MPI backend is built, the CUDA runtime when CUDA is, threads).
list(JOIN dcpp_pc_libs " " DCPP_PC_LIBS)
set(DCPP_PC_REQUIRES "libxxhash libzstd simdjson libcurl libcrypto")
set(DCPP_PC_PRIVATE_LIBS "-pthread")
if(DCPP_CUDA)
  set(DCPP_PC_PRIVATE_LIBS "-L${CUDAToolkit_LIBRARY_DIR} -lcudart -pthread")
endif()
if(DCPP_WITH_MPI)
  string(APPEND DCPP_PC_REQUIRES " ompi-cxx")
endif()
file(RELATIVE_PATH DCPP_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
configure_file(cmake/dcpp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/dcpp.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dcpp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
