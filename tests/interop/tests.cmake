# The C++ half of `make interop` (scripts/interop/run_interop.py drives it
# against real PyTorch); not a ctest entry, since it needs PyTorch's output.
add_executable(dcpp_interop_tool ${CMAKE_CURRENT_LIST_DIR}/interop_tool.cc)
target_link_libraries(dcpp_interop_tool PRIVATE dcpp_internal simdjson::simdjson)
# The fixture directory the interop tests read (committed, written by PyTorch).
if(TARGET test_interop)
  target_compile_definitions(test_interop PRIVATE DCPP_INTEROP_DATA="${CMAKE_SOURCE_DIR}/tests/data/interop")
  target_link_libraries(test_interop PRIVATE simdjson::simdjson)
  target_include_directories(test_interop PRIVATE ${CMAKE_SOURCE_DIR}/src)
endif()
