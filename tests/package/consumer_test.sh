#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds
# examples/consumer against it twice — with CMake's find_package(dcpp) and
# with pkg-config — and runs both programs (each checks what it loaded).
# Also configures it with dcpp as a subproject, which must leave out dcpp's
# tests, benchmarks, fuzz targets and command.
#   consumer_test.sh <build dir> <source dir> <c++ compiler>
set -euo pipefail
build=$1 src=$2 cxx=$3
work=$build/package-test
rm -rf "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work.install.log" 2>&1 || { cat "$work.install.log"; exit 1; }

echo "== find_package(dcpp) from $prefix"
cmake -S "$src/examples/consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$work/cmake" > /dev/null
"$work/cmake/dcpp_consumer"

echo "== add_subdirectory(dcpp)"
cmake -S "$src/examples/consumer" -B "$work/subproject" -DDCPP_SOURCE_DIR="$src" \
      -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release | grep "dcpp as a subproject"

echo "== pkg-config dcpp"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --modversion dcpp
# shellcheck disable=SC2046
"$cxx" -O1 -o "$work/pkgconfig_consumer" "$src/examples/consumer/consumer.cc" $(pkg-config --cflags --libs dcpp)
"$work/pkgconfig_consumer"
