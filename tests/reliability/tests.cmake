# Extra pieces of the reliability tests (included by tests/CMakeLists.txt):
# the child process the SIGKILL test kills, the MPI rank-kill program and its
# script, and the fuzz targets (fuzz/CMakeLists.txt).

add_executable(reliability_kill_child ${CMAKE_CURRENT_LIST_DIR}/kill_save_child_main.cc)
target_include_directories(reliability_kill_child PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(reliability_kill_child PRIVATE dcpp_internal)
if(TARGET test_reliability)
  target_compile_definitions(test_reliability PRIVATE DCPP_KILL_CHILD="$<TARGET_FILE:reliability_kill_child>")
  add_dependencies(test_reliability reliability_kill_child)
endif()

if(DCPP_WITH_MPI)
  add_executable(reliability_rank_kill_mpi ${CMAKE_CURRENT_LIST_DIR}/rank_kill_mpi_main.cc)
  target_link_libraries(reliability_rank_kill_mpi PRIVATE dcpp_internal)
  add_test(NAME reliability_rank_kill_mpi
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/rank_kill_mpi_test.sh ${MPIEXEC_EXECUTABLE}
                   $<TARGET_FILE:reliability_rank_kill_mpi> ${DCPP_MPIRUN_FLAGS})
  set_tests_properties(reliability_rank_kill_mpi PROPERTIES TIMEOUT 240 PROCESSORS 4
                       RESOURCE_LOCK reliability_rank_kill_mpi)
  if(TARGET test_reliability)
    add_dependencies(test_reliability reliability_rank_kill_mpi)
  endif()
endif()

# libFuzzer targets (clang only) and their replay on every compiler.
add_subdirectory(${PROJECT_SOURCE_DIR}/fuzz ${CMAKE_BINARY_DIR}/fuzz)
