// Entry point of the *_mpi tests: one process per rank under mpirun. MPI is
// initialised through dcpp::mpi_world() so every test sees the same world.
// Rank 0 prints gtest's usual progress; the other ranks print only their
// failures (prefixed with their rank), so a failure on any rank is visible.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "dcpp/comm.h"

namespace {

class FailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stdout, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.message());
    std::fflush(stdout);
  }

  void OnTestEnd(const testing::TestInfo& info) override {
    if (!info.result()->Failed()) return;
    std::fprintf(stdout, "[rank %d] [  FAILED  ] %s.%s\n", rank_, info.test_suite_name(), info.name());
    std::fflush(stdout);
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  dcpp::CommPtr world = dcpp::mpi_world();
  // A test whose ranks disagree on the collectives would otherwise wait for
  // the ctest timeout; this aborts the job with a message naming the rank.
  world->set_timeout(std::chrono::minutes(2));
  if (world->rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(world->rank()));
  }
  int rc = RUN_ALL_TESTS();
  // A failure on any rank fails the job.
  int32_t worst = rc;
  world->all_reduce(&worst, 1, dcpp::DType::kInt32, dcpp::ReduceOp::kMax);
  return worst;
}
