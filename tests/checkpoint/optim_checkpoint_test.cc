// Optimizer state reshards with the model: AdamW trained on 4 ranks, resumed
// on 2, matches an uninterrupted single-rank run.
#include <gtest/gtest.h>

#include "checkpoint/checkpoint_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

TEST(checkpoint_optim, AdamWTrainedOn4ResumesOn2) {
  TempDir tmp;
  run_ranks(4, [&](CommPtr comm) { case_optim_train_save(comm, tmp.path()); });
  run_ranks(2, [&](CommPtr comm) { case_optim_load_continue(comm, tmp.path()); });
}

TEST(checkpoint_optim, AdamWTrainedOn3ResumesOn5) {
  TempDir tmp;
  run_ranks(3, [&](CommPtr comm) { case_optim_train_save(comm, tmp.path()); });
  run_ranks(5, [&](CommPtr comm) { case_optim_load_continue(comm, tmp.path()); });
}

}  // namespace
}  // namespace dcpp::testing
