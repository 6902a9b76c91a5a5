// The DTensor cases on the MPI backend (run by ctest under mpirun -np 2, 3, 4).
#include <gtest/gtest.h>

#include "dcpp/comm.h"
#include "dtensor/dtensor_cases.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

TEST(dtensor_DTensorMpi, DeviceMesh) { testing::device_mesh_case(testing::mpi_test_world()); }

TEST(dtensor_DTensorMpi, RoundTripEveryPlacement) {
  // Every rank derives the same seed (test_seed is deterministic).
  testing::roundtrip_case(testing::mpi_test_world(), testing::test_seed("DTensorMpi.RoundTripEveryPlacement"));
}

TEST(dtensor_DTensorMpi, FromLocal) {
  testing::from_local_case(testing::mpi_test_world(), testing::test_seed("DTensorMpi.FromLocal"));
}

}  // namespace
}  // namespace dcpp
