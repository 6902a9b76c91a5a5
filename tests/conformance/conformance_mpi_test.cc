// The storage conformance suite under mpirun (one process per rank, the MPI
// backend): every case on the world; resharded loads from the world to each
// of its subsets (ranks [0, m)) and from each subset to the world. The tests
// themselves are in conformance_suite.cc.
#include <gtest/gtest.h>

#include "conformance/conformance_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {

void run_on_worlds(const CaseBody& body) {
  CommPtr world = mpi_test_world();
  SharedTempDir dir(world);
  body(world, dir.path());
}

void run_resharded(const CaseBody& save, const CaseBody& load) {
  CommPtr world = mpi_test_world();
  const int n = world->size();
  SharedTempDir dir(world);
  const std::string from_world = dir.path() + "/from-world";
  save(world, from_world);
  for (int m = 1; m <= n; ++m) {
    CommPtr sub = first_ranks(world, m);
    if (sub) load(sub, from_world);
    world->barrier();
  }
  for (int m = 1; m < n; ++m) {
    const std::string from_subset = dir.path() + "/from-" + std::to_string(m);
    CommPtr sub = first_ranks(world, m);
    if (sub) save(sub, from_subset);
    world->barrier();
    load(world, from_subset);
  }
}

}  // namespace dcpp::testing
