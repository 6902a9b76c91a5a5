# Extra pieces of the storage conformance suite (included by tests/CMakeLists.txt):
# the test definitions and every backend description (*_backend.cc, one
# registration line each) go into both suite binaries, which differ only in
# where the cases run (conformance_test.cc: thread ranks; conformance_mpi_test.cc: mpirun).
file(GLOB conformance_backend_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_backend.cc)
foreach(target test_conformance test_conformance_mpi)
  if(TARGET ${target})
    target_sources(${target} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/conformance_suite.cc ${conformance_backend_srcs})
  endif()
endforeach()
