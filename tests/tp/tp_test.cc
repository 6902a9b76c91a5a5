// Tensor parallelism on the thread backend, world sizes 1–5.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "dcpp/testing/models.h"
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

// GPTModel built on meta, parallelized, then initialised on each rank holds
// exactly the values of the model initialised whole on one rank, and
// computes the same loss and gradients (to float tolerance: the Rowwise sum
// is rounded per shard).
TEST(tp_TensorParallel, GPTModelInitIsShardingIndependentAndTrainsLikeOneRank) {
  const GPTConfig config{.layers = 2, .hidden = 12, .ffn_hidden = 20};
  const uint64_t seed = testing::test_seed("TensorParallel.GPTModel");
  Generator gen(seed);
  const Tensor x = Tensor::uniform({3, config.hidden}, -1, 1, gen);
  const Tensor g = Tensor::uniform({3, config.hidden}, -1, 1, gen);
  GPTModel whole(config, {}, seed);
  const Tensor y_ref = whole.forward(x);
  whole.backward(g);
  for_each_world_size({1, 2, 3, 4, 5}, [&](CommPtr w) {
    DeviceMesh mesh = init_device_mesh(w, "cpu", {w->size()});
    GPTModel model(config, ModuleOptions{Device::kMeta});
    parallelize_module(model, mesh, gpt_tp_plan(config));
    model.init_weights(seed);
    auto ref = whole.named_parameters();
    auto mine = model.named_parameters();
    ASSERT_EQ(mine.size(), ref.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      ASSERT_EQ(mine[i].first, ref[i].first);
      EXPECT_TRUE(equal(mine[i].second->dtensor().full_tensor(), ref[i].second->local()))
          << mine[i].first << " on " << w->size() << " ranks";
    }
    const Tensor y = model.forward(x);
    model.backward(g);
    for (int64_t k = 0; k < y.numel(); ++k)
      EXPECT_NEAR(y.data<float>()[k], y_ref.data<float>()[k], 1e-5) << "output " << k << ", " << w->size() << " ranks";
    for (size_t i = 0; i < mine.size(); ++i) {
      const Tensor gm = mine[i].second->grad_dtensor().full_tensor();
      const Tensor gr = ref[i].second->grad_local();
      for (int64_t k = 0; k < gm.numel(); ++k)
        EXPECT_NEAR(gm.data<float>()[k], gr.data<float>()[k], 1e-5) << mine[i].first << " grad " << k;
    }
  });
}

}  // namespace
}  // namespace dcpp
