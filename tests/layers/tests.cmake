# The include layering (cmake/check_layers.cmake) as ctest entries: the tree
# as it is passes, and the same check with one upward include added to the
# lowest layer fails, naming the file, both layers and the header.
set(dcpp_layer_check ${CMAKE_COMMAND} -DTABLE=${CMAKE_BINARY_DIR}/dcpp_layers.txt -DROOT=${CMAKE_SOURCE_DIR})
add_test(NAME layers_IncludesPointDown COMMAND ${dcpp_layer_check} -P ${DCPP_CHECK_LAYERS_SCRIPT})
set_tests_properties(layers_IncludesPointDown PROPERTIES PASS_REGULAR_EXPRESSION "every include points down")
add_test(NAME layers_UpwardIncludeIsRejected
         COMMAND ${dcpp_layer_check} -DEXTRA=tensor:${CMAKE_CURRENT_LIST_DIR}/upward_include.h
                 -P ${DCPP_CHECK_LAYERS_SCRIPT})
set_tests_properties(layers_UpwardIncludeIsRejected PROPERTIES
  PASS_REGULAR_EXPRESSION "upward_include.h \\(layer tensor\\) includes dcpp/checkpoint_manager.h of layer api")
