// Entry point of the *_mpi tests: one process per rank under mpirun. MPI is
// initialised through dcpp::mpi_world() so every test sees the same world.
#include <gtest/gtest.h>

#include "dcpp/comm.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  dcpp::CommPtr world = dcpp::mpi_world();
  // Only rank 0 prints gtest's progress; failures are printed by every rank.
  if (world->rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  // A failure on any rank fails the job.
  int32_t worst = rc;
  world->all_reduce(&worst, 1, dcpp::DType::kInt32, dcpp::ReduceOp::kMax);
  return worst;
}
