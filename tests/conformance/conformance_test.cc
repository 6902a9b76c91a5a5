// The storage conformance suite on the thread backend: every case at world
// sizes 1 to 5 (uneven ones included), resharded loads at every pair of
// them. The tests themselves are in conformance_suite.cc.
#include <gtest/gtest.h>

#include "conformance/conformance_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {

namespace {

constexpr int kWorldSizes[] = {1, 2, 3, 4, 5};

void run_in(int world, const std::string& dir, const CaseBody& body) {
  run_ranks(world, [&](CommPtr comm) {
    // gtest's traces are per thread: name the world in each rank's failures.
    SCOPED_TRACE("rank " + std::to_string(comm->rank()) + " of " + std::to_string(world));
    body(comm, dir);
  });
}

}  // namespace

void run_on_worlds(const CaseBody& body) {
  for (int n : kWorldSizes) {
    TempDir dir;
    run_in(n, dir.path(), body);
  }
}

void run_resharded(const CaseBody& save, const CaseBody& load) {
  for (int n : kWorldSizes) {
    TempDir dir;
    run_in(n, dir.path(), save);
    for (int m : kWorldSizes) {
      SCOPED_TRACE("saved on " + std::to_string(n) + " ranks, loaded on " + std::to_string(m));
      run_in(m, dir.path(), load);
    }
  }
}

}  // namespace dcpp::testing
