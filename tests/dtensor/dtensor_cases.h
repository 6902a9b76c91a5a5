// DTensor cases shared by the thread-backend tests (dtensor_test.cc) and the
// MPI tests (dtensor_mpi_test.cc): each runs on one rank of `world`.
#pragma once

#include <cstdint>

#include "dcpp/comm.h"

namespace dcpp::testing {

// Mesh coordinates, sub-communicators and equality on 1-d and (when the
// world size allows) 2-d meshes.
void device_mesh_case(const CommPtr& world);
// distribute_tensor → redistribute → full_tensor returns the original
// exactly, for random shapes, dtypes and every placement pair, on 1-d meshes
// and on the 2-d meshes the world size allows (2×2, 2×3, 1×n, n×1).
void roundtrip_case(const CommPtr& world, uint64_t seed);
// from_local infers the global shape; local pieces match the chunk math.
void from_local_case(const CommPtr& world, uint64_t seed);

}  // namespace dcpp::testing
