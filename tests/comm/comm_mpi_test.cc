// The MPI backend on the mpirun world (ctest runs this binary with -np 2, 3
// and 4): the same collective checks as the thread backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "comm/collective_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

TEST(comm_mpi, Basics) {
  CommPtr comm = mpi_test_world();
  EXPECT_TRUE(mpi_available());
  EXPECT_TRUE(launched_by_mpirun());
  EXPECT_EQ(comm->backend(), "mpi");
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  ASSERT_NE(size, nullptr);
  ASSERT_NE(rank, nullptr);
  EXPECT_EQ(comm->size(), std::atoi(size));
  EXPECT_EQ(comm->rank(), std::atoi(rank));
  EXPECT_EQ(mpi_world().get(), comm.get()) << "mpi_world() returns one shared world";
}

TEST(comm_mpi, Barrier) { check_barrier(mpi_test_world()); }
TEST(comm_mpi, Broadcast) { check_broadcast(mpi_test_world()); }
TEST(comm_mpi, AllGather) { check_all_gather(mpi_test_world()); }
TEST(comm_mpi, AllGatherV) { check_all_gather_v(mpi_test_world()); }
TEST(comm_mpi, GatherV) { check_gather_v(mpi_test_world()); }
TEST(comm_mpi, ScatterV) { check_scatter_v(mpi_test_world()); }
TEST(comm_mpi, AllToAllV) { check_all_to_all_v(mpi_test_world()); }
TEST(comm_mpi, AllReduceDtypes) { check_all_reduce_dtypes(mpi_test_world()); }
TEST(comm_mpi, AllReduceHalfAccumulation) { check_all_reduce_half_accumulation(mpi_test_world()); }
TEST(comm_mpi, AllReduceRankOrder) { check_all_reduce_rank_order(mpi_test_world()); }
TEST(comm_mpi, AllReduceNan) { check_all_reduce_nan(mpi_test_world()); }
TEST(comm_mpi, AllReduceLarge) { check_all_reduce_large(mpi_test_world()); }
TEST(comm_mpi, AllReduceUnsupported) { check_all_reduce_unsupported(mpi_test_world()); }
TEST(comm_mpi, ReduceScatter) { check_reduce_scatter(mpi_test_world()); }
TEST(comm_mpi, Split) { check_split(mpi_test_world()); }
TEST(comm_mpi, TensorAllReduce) { check_tensor_all_reduce(mpi_test_world()); }

}  // namespace
}  // namespace dcpp::testing
