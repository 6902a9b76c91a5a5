# The tools tests run the dcpp command as a real process: they need its path
# and must rebuild it first. JSON output is parsed with simdjson.
if(TARGET test_tools AND TARGET dcpp_cli)
  target_compile_definitions(test_tools PRIVATE DCPP_CLI_PATH="$<TARGET_FILE:dcpp_cli>")
  add_dependencies(test_tools dcpp_cli)
  target_link_libraries(test_tools PRIVATE simdjson::simdjson)
endif()
