# The s3 tests (included by tests/CMakeLists.txt). test_s3 (sigv4_test.cc,
# made by the generic loop) needs no server. The rest run against moto's
# S3-compatible server on the loopback, which the ctest fixture "s3_server"
# starts at a free port (s3_server.py, with the venv of scripts/s3-venv.sh)
# and stops: test_s3_server (S3FileSystem, save/load and the commit without
# rename, faults injected by fault_proxy.py, the conformance suite with the
# "s3" backend, on thread ranks) and
# test_s3_server_mpi (the conformance suite under mpirun). Without the venv
# the fixture records why, and every server test skips saying so.
set(DCPP_S3_VENV "$ENV{HOME}/.cache/dcpp/s3-venv" CACHE PATH "The venv with moto and boto3 (scripts/s3-venv.sh)")
set(s3_dir ${CMAKE_CURRENT_LIST_DIR})
set(conformance_dir ${CMAKE_CURRENT_LIST_DIR}/../conformance)
set(s3_state ${CMAKE_CURRENT_BINARY_DIR}/s3-server.state)
find_package(Python3 COMPONENTS Interpreter QUIET)
set(s3_python python3)
if(Python3_EXECUTABLE)
  set(s3_python ${Python3_EXECUTABLE})
endif()

if(TARGET test_s3)
  target_compile_definitions(test_s3 PRIVATE DCPP_S3_VENV="${DCPP_S3_VENV}" DCPP_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()

add_test(NAME s3_server_start COMMAND ${s3_python} ${s3_dir}/s3_server.py start ${s3_state} ${DCPP_S3_VENV})
set_tests_properties(s3_server_start PROPERTIES FIXTURES_SETUP s3_server TIMEOUT 90)
add_test(NAME s3_server_stop COMMAND ${s3_python} ${s3_dir}/s3_server.py stop ${s3_state})
set_tests_properties(s3_server_stop PROPERTIES FIXTURES_CLEANUP s3_server)

file(GLOB s3_server_srcs CONFIGURE_DEPENDS ${s3_dir}/*_server.cc)
set(s3_support_srcs ${s3_dir}/s3_env.cc ${s3_dir}/s3_backend.cc ${conformance_dir}/conformance_suite.cc
    ${conformance_dir}/conformance_cases.cc)
add_executable(test_s3_server ${s3_server_srcs} ${s3_support_srcs} ${conformance_dir}/conformance_test.cc)
target_link_libraries(test_s3_server PRIVATE dcpp_test_support GTest::gtest_main)
target_compile_definitions(test_s3_server PRIVATE DCPP_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
if(TARGET dcpp_cli)
  target_compile_definitions(test_s3_server PRIVATE DCPP_CLI_PATH="$<TARGET_FILE:dcpp_cli>")
  add_dependencies(test_s3_server dcpp_cli)
endif()
gtest_discover_tests(test_s3_server DISCOVERY_TIMEOUT 60 TEST_PREFIX s3_
                     PROPERTIES TIMEOUT 300 FIXTURES_REQUIRED s3_server ENVIRONMENT DCPP_S3_TEST_STATE=${s3_state}
                     WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})

if(DCPP_WITH_MPI)
  add_executable(test_s3_server_mpi ${s3_support_srcs} ${conformance_dir}/conformance_mpi_test.cc
                 ${CMAKE_CURRENT_LIST_DIR}/../mpi_main.cc)
  target_link_libraries(test_s3_server_mpi PRIVATE dcpp_test_support GTest::gtest)
  foreach(np ${DCPP_MPI_WORLD_SIZES})
    add_test(NAME s3_conformance_mpi_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} ${DCPP_MPIRUN_FLAGS} $<TARGET_FILE:test_s3_server_mpi>)
    set_tests_properties(s3_conformance_mpi_np${np} PROPERTIES TIMEOUT 300 PROCESSORS ${np}
                         FIXTURES_REQUIRED s3_server SKIP_REGULAR_EXPRESSION "no S3 server"
                         ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;DCPP_S3_TEST_STATE=${s3_state}")
    if(DCPP_SANITIZE)
      set_property(TEST s3_conformance_mpi_np${np} APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
    endif()
  endforeach()
endif()
