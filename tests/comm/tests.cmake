# Extra comm tests, included by tests/CMakeLists.txt: the MPI failure
# program and the script that checks a misbehaving rank ends the whole job.
if(DCPP_WITH_MPI)
  add_executable(comm_mpi_failure ${CMAKE_CURRENT_SOURCE_DIR}/comm/mpi_failure_main.cc)
  target_link_libraries(comm_mpi_failure PRIVATE dcpp_comm)
  foreach(mode fail stop)
    add_test(NAME comm_mpi_failure_${mode}
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/comm/mpi_failure_test.sh ${MPIEXEC_EXECUTABLE}
                     $<TARGET_FILE:comm_mpi_failure> ${mode} ${DCPP_MPIRUN_FLAGS})
    # Both modes look for leftover processes of the same program.
    set_tests_properties(comm_mpi_failure_${mode} PROPERTIES TIMEOUT 120 PROCESSORS 3
                         RESOURCE_LOCK comm_mpi_failure)
  endforeach()
  # `make test_comm_mpi` also builds the failure program.
  if(TARGET test_comm_mpi)
    add_dependencies(test_comm_mpi comm_mpi_failure)
  endif()
endif()

# The rank-status protocol is private to dcpp (src/comm/rank_status.h).
foreach(t test_comm test_comm_mpi)
  if(TARGET ${t})
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/src)
  endif()
endforeach()
