// Tensor parallelism on the MPI backend (ctest runs it under mpirun -np 2, 3, 4).
#include <gtest/gtest.h>

#include "support/distributed.h"
#include "tp/tp_cases.h"

namespace dcpp {
namespace {

TEST(tp_TensorParallelMpi, MatchesSingleRankForwardBackwardAndOptimizers) {
  testing::tp_matches_single_rank_case(testing::mpi_test_world(), testing::test_seed("TensorParallelMpi.MatchesSingleRank"));
}

TEST(tp_TensorParallelMpi, MetaModelLocalShapes) { testing::tp_meta_case(testing::mpi_test_world()); }

TEST(tp_TensorParallelMpi, StateDicts) {
  testing::tp_state_dict_case(testing::mpi_test_world(), testing::test_seed("TensorParallelMpi.StateDicts"));
}

}  // namespace
}  // namespace dcpp
