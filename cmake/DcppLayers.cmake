# dcpp's layers: one static library per folder of src/, each depending only
# on the layers below it (docs/design.md, "Layers").
#
# dcpp_layer(NAME DIRS <src folders> HEADERS <public headers under include/dcpp>
#            [LAYERS <lower layers>] [LIBS <public libraries>] [EXCLUDE <regex of sources>]
#            [PRIVATE_LIBS <libraries>] [PRIVATE_DEFS <definitions>])
# makes the library dcpp_<NAME> (exported as dcpp::<NAME>) from every .cc in
# DIRS, and records which public headers and source folders the layer owns.
# dcpp_check_layers() then checks, at configure time, that no file of a layer
# includes a header owned by a layer it does not depend on (directly or
# through the layers below), and that every public header has one owner; it
# writes the table it checked to <build>/dcpp_layers.txt, which the ctest
# entries of tests/layers/ check again.

set(DCPP_CHECK_LAYERS_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/check_layers.cmake)

function(dcpp_layer name)
  cmake_parse_arguments(L "" "EXCLUDE" "DIRS;HEADERS;LAYERS;LIBS;PRIVATE_LIBS;PRIVATE_DEFS" ${ARGN})
  set(srcs)
  foreach(dir ${L_DIRS})
    file(GLOB_RECURSE dir_srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${dir}/*.cc)
    list(APPEND srcs ${dir_srcs})
  endforeach()
  if(L_EXCLUDE)
    list(FILTER srcs EXCLUDE REGEX "${L_EXCLUDE}")
  endif()
  set(target dcpp_${name})
  set(layer_targets)
  set(closure ${name})
  foreach(lower ${L_LAYERS})
    list(APPEND layer_targets dcpp_${lower})
    get_property(lower_closure GLOBAL PROPERTY DCPP_LAYER_CLOSURE_${lower})
    list(APPEND closure ${lower_closure})
  endforeach()
  list(REMOVE_DUPLICATES closure)

  add_library(${target} STATIC ${srcs})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  # Warning and sanitizer flags are dcpp's own: they stay out of the exported interface.
  target_link_libraries(${target} PUBLIC ${layer_targets} ${L_LIBS}
                        PRIVATE $<BUILD_INTERFACE:dcpp_options> ${L_PRIVATE_LIBS})
  target_compile_definitions(${target} PRIVATE ${L_PRIVATE_DEFS})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON EXPORT_NAME ${name})
  add_library(dcpp::${name} ALIAS ${target})

  set_property(GLOBAL PROPERTY DCPP_LAYER_CLOSURE_${name} ${closure})
  set_property(GLOBAL APPEND PROPERTY DCPP_LAYERS ${name})
  set_property(GLOBAL PROPERTY DCPP_LAYER_DIRS_${name} ${L_DIRS})
  set_property(GLOBAL PROPERTY DCPP_LAYER_HEADERS_${name} ${L_HEADERS})
endfunction()

# Writes the layer table and checks the tree against it (FATAL_ERROR on a violation).
function(dcpp_check_layers)
  set(table "${CMAKE_BINARY_DIR}/dcpp_layers.txt")
  set(text "")
  get_property(layers GLOBAL PROPERTY DCPP_LAYERS)
  foreach(name ${layers})
    get_property(closure GLOBAL PROPERTY DCPP_LAYER_CLOSURE_${name})
    get_property(dirs GLOBAL PROPERTY DCPP_LAYER_DIRS_${name})
    get_property(headers GLOBAL PROPERTY DCPP_LAYER_HEADERS_${name})
    string(REPLACE ";" " " closure "${closure}")
    string(APPEND text "layer ${name} ${closure}\n")
    foreach(dir ${dirs})
      string(APPEND text "dir ${name} ${dir}\n")
    endforeach()
    foreach(header ${headers})
      string(APPEND text "header ${name} ${header}\n")
    endforeach()
  endforeach()
  file(WRITE ${table} "${text}")
  execute_process(COMMAND ${CMAKE_COMMAND} -DTABLE=${table} -DROOT=${PROJECT_SOURCE_DIR}
                          -P ${DCPP_CHECK_LAYERS_SCRIPT}
                  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "dcpp layering check failed:\n${out}${err}")
  endif()
endfunction()
