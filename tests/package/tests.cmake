# The installed package, used as another project would (examples/consumer).
# Not in sanitizer builds (DCPP_SANITIZE, the fuzz build, ThreadSanitizer
# through CMAKE_CXX_FLAGS): the installed libraries then carry
# instrumentation that a plain consumer does not link.
if(NOT DCPP_SANITIZE AND NOT DCPP_FUZZ AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  add_test(NAME package_ConsumerBuildsAgainstInstalledDcpp
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/consumer_test.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
                   ${CMAKE_CXX_COMPILER})
  set_tests_properties(package_ConsumerBuildsAgainstInstalledDcpp PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE
                       PASS_REGULAR_EXPRESSION "find_package.*all 35 values.*only the libraries.*pkg-config.*all 35 values")
endif()
