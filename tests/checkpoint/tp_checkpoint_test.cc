// The seed's two tests (test/distributed/checkpoint/test_tp_checkpoint.py),
// on the thread backend at the seed's world sizes.
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

TEST(TestTpCheckpoint, test_tp_checkpoint) {
  TempDir tmp;
  for_each_world_size({2, 3, 4}, [&](CommPtr comm) {
    case_tp_checkpoint(comm, tmp.path() + "/ckpt-" + std::to_string(comm->size()));
  });
}

TEST(TestTpCheckpoint, test_tp_checkpoint_load_on_meta_device) {
  TempDir tmp;
  for_each_world_size({2, 3, 4}, [&](CommPtr comm) {
    case_tp_checkpoint_load_on_meta_device(comm, tmp.path() + "/ckpt-" + std::to_string(comm->size()));
  });
}

// The same checkpoint path saved twice: the second save replaces the first.
TEST(TestTpCheckpoint, test_tp_checkpoint_saves_over_previous) {
  TempDir tmp;
  for_each_world_size({3, 2}, [&](CommPtr comm) { case_tp_checkpoint(comm, tmp.path() + "/ckpt"); });
}

}  // namespace
}  // namespace dcpp::testing
