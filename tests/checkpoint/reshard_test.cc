// Resharding matrix: save on every layout (1-d meshes of 1..5 ranks and a
// 2×2 mesh), load on every layout, with placements, dtypes, zero-size tensors
// and empty shards varying per tensor (checkpoint_cases.cc).
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

class checkpoint_reshard : public ::testing::TestWithParam<ReshardLayout> {};

TEST_P(checkpoint_reshard, SaveOnLayoutLoadOnEveryLayout) {
  const ReshardLayout saved = GetParam();
  const uint64_t seed = test_seed("checkpoint_reshard.save_" + saved.name());
  TempDir tmp;
  const std::string dir = tmp.path() + "/ckpt";
  run_ranks(saved.world, [&](CommPtr comm) { case_reshard_save(comm, dir, saved, seed); });
  for (const ReshardLayout& loaded : reshard_layouts()) {
    SCOPED_TRACE("saved on mesh " + saved.name() + ", loaded on mesh " + loaded.name());
    run_ranks(loaded.world, [&](CommPtr comm) { case_reshard_load(comm, dir, loaded, seed); });
  }
}

INSTANTIATE_TEST_SUITE_P(layouts, checkpoint_reshard, ::testing::ValuesIn(reshard_layouts()),
                         [](const auto& info) { return "mesh_" + info.param.name(); });

}  // namespace
}  // namespace dcpp::testing
