// The checkpoint cases under mpirun (one process per rank, the MPI backend):
// the seed's tests, resharding between the world and its subsets, and
// optimizer state. (Collective load and save errors under mpirun are in the
// storage conformance suite, tests/conformance.)
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

TEST(TestTpCheckpoint, test_tp_checkpoint) {
  CommPtr world = mpi_test_world();
  SharedTempDir dir(world);
  case_tp_checkpoint(world, dir.path());
}

TEST(TestTpCheckpoint, test_tp_checkpoint_load_on_meta_device) {
  CommPtr world = mpi_test_world();
  SharedTempDir dir(world);
  case_tp_checkpoint_load_on_meta_device(world, dir.path());
}

TEST(checkpoint_reshard_mpi, WorldToEverySubsetAndBack) {
  CommPtr world = mpi_test_world();
  const int n = world->size();
  const uint64_t seed = test_seed("checkpoint_reshard_mpi.WorldToEverySubsetAndBack");
  SharedTempDir dir(world);
  const std::string from_world = dir.path() + "/from-world";
  ReshardLayout full{n, {n}};
  case_reshard_save(world, from_world, full, seed);
  for (int m = 1; m <= n; ++m) {
    CommPtr sub = first_ranks(world, m);
    if (sub) case_reshard_load(sub, from_world, ReshardLayout{m, {m}}, seed);
    world->barrier();
  }
  if (n == 4) case_reshard_load(world, from_world, ReshardLayout{4, {2, 2}}, seed);
  // Saved by a subset, loaded by the world.
  for (int m = 1; m < n; ++m) {
    const std::string from_subset = dir.path() + "/from-" + std::to_string(m);
    CommPtr sub = first_ranks(world, m);
    if (sub) case_reshard_save(sub, from_subset, ReshardLayout{m, {m}}, seed);
    world->barrier();
    case_reshard_load(world, from_subset, full, seed);
  }
}

TEST(checkpoint_optim_mpi, ResumeOnFewerRanks) {
  CommPtr world = mpi_test_world();
  SharedTempDir dir(world);
  case_optim_train_save(world, dir.path());
  const int m = world->size() == 4 ? 2 : world->size() - 1;
  CommPtr sub = first_ranks(world, m);
  if (sub) case_optim_load_continue(sub, dir.path());
  world->barrier();
}

}  // namespace
}  // namespace dcpp::testing
