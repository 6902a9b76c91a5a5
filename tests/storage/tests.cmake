# Extra pieces of the storage tests (included by tests/CMakeLists.txt).

# The tests check checksums, encoded blocks and the JSON view with the
# libraries themselves.
if(TARGET test_storage)
  target_link_libraries(test_storage PRIVATE PkgConfig::XXHASH PkgConfig::ZSTD simdjson::simdjson)
endif()

# The independent-reader cross-check: a C++ program writes a checkpoint and
# dumps every tensor; a Python reader written from docs/format.md alone
# loads the checkpoint and compares byte for byte.
add_executable(dump_checkpoint ${CMAKE_CURRENT_LIST_DIR}/dump_checkpoint_main.cc)
target_include_directories(dump_checkpoint PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(dump_checkpoint PRIVATE dcpp_internal)

set(dcpp_dump_dir ${CMAKE_CURRENT_BINARY_DIR}/storage_independent_reader)
add_test(NAME storage_dump_checkpoint COMMAND dump_checkpoint ${dcpp_dump_dir})
set_tests_properties(storage_dump_checkpoint PROPERTIES FIXTURES_SETUP storage_dump TIMEOUT 120)
add_test(NAME storage_independent_reader
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/independent_reader.py
                 ${dcpp_dump_dir}/ckpt ${dcpp_dump_dir}/dump)
set_tests_properties(storage_independent_reader PROPERTIES FIXTURES_REQUIRED storage_dump TIMEOUT 300)

# The same cross-check on a compressed checkpoint (format version 2, encoded
# blocks decoded by the reader with python3-zstandard).
set(dcpp_dump_dir_z ${CMAKE_CURRENT_BINARY_DIR}/storage_independent_reader_compressed)
add_test(NAME storage_dump_checkpoint_compressed COMMAND dump_checkpoint ${dcpp_dump_dir_z} --compress)
set_tests_properties(storage_dump_checkpoint_compressed PROPERTIES FIXTURES_SETUP storage_dump_z TIMEOUT 120)
add_test(NAME storage_independent_reader_compressed
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/independent_reader.py
                 ${dcpp_dump_dir_z}/ckpt ${dcpp_dump_dir_z}/dump)
set_tests_properties(storage_independent_reader_compressed PROPERTIES FIXTURES_REQUIRED storage_dump_z TIMEOUT 300)
