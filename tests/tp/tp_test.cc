// Tensor parallelism on the thread backend, world sizes 1–5.
#include <gtest/gtest.h>

#include "support/distributed.h"
#include "tp/tp_cases.h"

namespace dcpp {
namespace {

using testing::for_each_world_size;

TEST(tp_TensorParallel, MatchesSingleRankForwardBackwardAndOptimizers) {
  const uint64_t seed = testing::test_seed("TensorParallel.MatchesSingleRank");
  for_each_world_size({1, 2, 3, 4, 5}, [seed](CommPtr w) { testing::tp_matches_single_rank_case(w, seed); });
}

TEST(tp_TensorParallel, MetaModelLocalShapes) {
  for_each_world_size({1, 2, 3, 4, 5}, [](CommPtr w) { testing::tp_meta_case(w); });
}

TEST(tp_TensorParallel, StateDicts) {
  const uint64_t seed = testing::test_seed("TensorParallel.StateDicts");
  for_each_world_size({1, 2, 3, 4, 5}, [seed](CommPtr w) { testing::tp_state_dict_case(w, seed); });
}

}  // namespace
}  // namespace dcpp
