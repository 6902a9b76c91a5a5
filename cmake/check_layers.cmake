# Checks that dcpp's includes point down the layers (cmake -P script).
#
#   cmake -DTABLE=<build>/dcpp_layers.txt -DROOT=<source dir> [-DEXTRA=<layer>:<file>] -P check_layers.cmake
#
# TABLE, written by dcpp_check_layers() (cmake/DcppLayers.cmake), has lines
#   layer <name> <name and every layer below it that it depends on>
#   dir <name> <source folder, e.g. src/checkpoint>
#   header <name> <public header under include/dcpp, e.g. checkpoint.h>
# Every .cc/.h in a layer's folders and every public header it owns may
# include "dcpp/<header>" only when that header's layer is in its list, and a
# private header "<folder>/..." only when src/<folder> belongs to such a layer.
# Every header under include/dcpp must be owned by exactly one layer. EXTRA
# adds one more file to a layer (the tests use it to show that a violation
# is caught). Exits with an error listing every violation.
cmake_minimum_required(VERSION 3.25)

file(STRINGS ${TABLE} lines)
set(layers)
foreach(line ${lines})
  string(REPLACE " " ";" parts "${line}")
  list(GET parts 0 kind)
  list(GET parts 1 name)
  list(SUBLIST parts 2 -1 rest)
  if(kind STREQUAL "layer")
    list(APPEND layers ${name})
    set(allowed_${name} ${rest})
    set(files_${name})
  elseif(kind STREQUAL "dir")
    file(GLOB_RECURSE found ${ROOT}/${rest}/*.cc ${ROOT}/${rest}/*.h)
    list(APPEND files_${name} ${found})
    string(REGEX REPLACE "^src/" "" folder "${rest}")
    set(folder_owner_${folder} ${name})
  elseif(kind STREQUAL "header")
    if(DEFINED header_owner_${rest})
      list(APPEND errors "include/dcpp/${rest} is claimed by layers ${header_owner_${rest}} and ${name}")
    endif()
    set(header_owner_${rest} ${name})
    list(APPEND files_${name} ${ROOT}/include/dcpp/${rest})
  endif()
endforeach()

if(EXTRA)
  string(REPLACE ":" ";" extra "${EXTRA}")
  list(GET extra 0 extra_layer)
  list(GET extra 1 extra_file)
  list(APPEND files_${extra_layer} ${extra_file})
endif()

file(GLOB_RECURSE public_headers RELATIVE ${ROOT}/include/dcpp ${ROOT}/include/dcpp/*.h)
foreach(header ${public_headers})
  if(NOT DEFINED header_owner_${header})
    list(APPEND errors "include/dcpp/${header} belongs to no layer (name it in a dcpp_layer() call)")
  endif()
endforeach()

foreach(layer ${layers})
  foreach(file ${files_${layer}})
    if(NOT EXISTS ${file})
      list(APPEND errors "${file}: listed for layer ${layer} but missing")
      continue()
    endif()
    file(STRINGS ${file} includes REGEX "^[ \t]*#[ \t]*include[ \t]+\"[^\"]+\"")
    string(REPLACE "${ROOT}/" "" shown "${file}")
    foreach(inc ${includes})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([^\"]+)\".*" "\\1" path "${inc}")
      set(owner "")
      if(path MATCHES "^dcpp/(.+)$")
        set(header ${CMAKE_MATCH_1})
        if(DEFINED header_owner_${header})
          set(owner ${header_owner_${header}})
        else()
          list(APPEND errors "${shown} (layer ${layer}) includes ${path}, which no layer owns")
          continue()
        endif()
      else()
        string(REGEX MATCH "^[^/]+" folder "${path}")
        if(path MATCHES "/" AND DEFINED folder_owner_${folder})
          set(owner ${folder_owner_${folder}})
        else()
          list(APPEND errors "${shown} (layer ${layer}) includes \"${path}\", which is neither dcpp/... nor a layer's private header")
          continue()
        endif()
      endif()
      if(NOT owner IN_LIST allowed_${layer})
        list(APPEND errors "${shown} (layer ${layer}) includes ${path} of layer ${owner}, which layer ${layer} does not depend on")
      endif()
    endforeach()
  endforeach()
endforeach()

if(errors)
  list(JOIN errors "\n  " text)
  message(FATAL_ERROR "include layering violated:\n  ${text}")
endif()
list(LENGTH layers n)
message(STATUS "dcpp layering: ${n} layers, every include points down")
