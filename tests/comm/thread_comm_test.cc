// The thread backend: every collective over world sizes 1..5, and the
// failure semantics (an exception, fail(), a rank that never arrives, a rank
// that returns early, mismatched calls).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/collective_cases.h"
#include "dcpp/comm.h"
#include "dcpp/error.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

using namespace std::chrono_literals;

void on_all_sizes(void (*check)(const CommPtr&)) {
  for_each_world_size({1, 2, 3, 4, 5}, [check](CommPtr comm) { check(comm); });
}

TEST(comm_thread, Basics) {
  for_each_world_size({1, 2, 3, 4, 5}, [](CommPtr comm) {
    EXPECT_EQ(comm->backend(), "threads");
    EXPECT_GE(comm->rank(), 0);
    EXPECT_LT(comm->rank(), comm->size());
    EXPECT_EQ(comm->timeout(), std::chrono::milliseconds(std::chrono::minutes(5)));
  });
  std::vector<int> seen(4, 0);
  run_ranks(4, [&](CommPtr comm) {
    EXPECT_EQ(comm->size(), 4);
    seen[static_cast<size_t>(comm->rank())] += 1;  // distinct element per rank
  });
  EXPECT_EQ(seen, std::vector<int>(4, 1));
}

TEST(comm_thread, RunRanksRejectsBadWorldSize) {
  try {
    run_ranks(0, [](CommPtr) {});
    FAIL() << "run_ranks(0) did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(comm_thread, Barrier) {
  on_all_sizes(check_barrier);
  // Nobody leaves a barrier before everyone has entered it.
  std::atomic<int> entered{0};
  run_ranks(5, [&](CommPtr comm) {
    for (int round = 1; round <= 20; ++round) {
      entered.fetch_add(1);
      comm->barrier();
      EXPECT_GE(entered.load(), round * comm->size()) << "round " << round;
      comm->barrier();
    }
  });
}

TEST(comm_thread, Broadcast) { on_all_sizes(check_broadcast); }
TEST(comm_thread, AllGather) { on_all_sizes(check_all_gather); }
TEST(comm_thread, AllGatherV) { on_all_sizes(check_all_gather_v); }
TEST(comm_thread, GatherV) { on_all_sizes(check_gather_v); }
TEST(comm_thread, ScatterV) { on_all_sizes(check_scatter_v); }
TEST(comm_thread, AllToAllV) { on_all_sizes(check_all_to_all_v); }
TEST(comm_thread, AllReduceDtypes) { on_all_sizes(check_all_reduce_dtypes); }
TEST(comm_thread, AllReduceHalfAccumulation) { on_all_sizes(check_all_reduce_half_accumulation); }
TEST(comm_thread, AllReduceRankOrder) { on_all_sizes(check_all_reduce_rank_order); }
TEST(comm_thread, AllReduceNan) { on_all_sizes(check_all_reduce_nan); }
TEST(comm_thread, AllReduceLarge) { on_all_sizes(check_all_reduce_large); }
TEST(comm_thread, AllReduceUnsupported) { on_all_sizes(check_all_reduce_unsupported); }
TEST(comm_thread, ReduceScatter) { on_all_sizes(check_reduce_scatter); }
TEST(comm_thread, Split) { on_all_sizes(check_split); }
TEST(comm_thread, TensorAllReduce) { on_all_sizes(check_tensor_all_reduce); }

TEST(comm_thread, SplitInheritsTimeout) {
  RunRanksOptions options;
  options.timeout = 1234ms;
  run_ranks(3, [](CommPtr comm) {
    EXPECT_EQ(comm->timeout(), 1234ms);
    CommPtr sub = comm->split(comm->rank() % 2, 0);
    EXPECT_EQ(sub->timeout(), 1234ms);
  }, options);
}

// Per-rank record of what each rank saw, filled inside run_ranks.
struct Outcome {
  bool threw = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

TEST(comm_thread, ExceptionOnOneRankFailsEveryRank) {
  constexpr int kRanks = 4;
  std::vector<Outcome> outcomes(kRanks);
  RunRanksOptions options;
  options.timeout = 60s;  // failure must propagate at once, not by timeout
  try {
    run_ranks(kRanks, [&](CommPtr comm) {
      Outcome& out = outcomes[static_cast<size_t>(comm->rank())];
      try {
        for (int step = 0; step < 10; ++step) {
          if (comm->rank() == 2 && step == 3) throw std::runtime_error("boom at step 3");
          int32_t v = 1;
          comm->all_reduce(&v, 1, DType::kInt32, ReduceOp::kSum);
          comm->barrier();
          std::vector<Blob> all = comm->all_gather_v(std::string(static_cast<size_t>(step), 'x'));
        }
      } catch (const Error& e) {
        out = {true, e.code(), e.message()};
        throw;
      } catch (const std::exception& e) {
        out = {true, ErrorCode::kInternal, e.what()};
        throw;
      }
    }, options);
    FAIL() << "run_ranks did not rethrow";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kComm) << e.what();
    EXPECT_NE(e.message().find("rank 2"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("boom at step 3"), std::string::npos) << e.what();
  }
  for (int r = 0; r < kRanks; ++r) {
    const Outcome& out = outcomes[static_cast<size_t>(r)];
    EXPECT_TRUE(out.threw) << "rank " << r;
    if (r == 2) continue;
    EXPECT_EQ(out.code, ErrorCode::kComm) << "rank " << r << ": " << out.message;
    EXPECT_NE(out.message.find("rank 2 failed"), std::string::npos) << "rank " << r << ": " << out.message;
    EXPECT_NE(out.message.find("boom at step 3"), std::string::npos) << "rank " << r << ": " << out.message;
  }
}

TEST(comm_thread, FailNamesRankAndCause) {
  constexpr int kRanks = 3;
  std::vector<Outcome> outcomes(kRanks);
  RunRanksOptions options;
  options.timeout = 60s;
  try {
    run_ranks(kRanks, [&](CommPtr comm) {
      Outcome& out = outcomes[static_cast<size_t>(comm->rank())];
      try {
        comm->barrier();
        if (comm->rank() == 1) comm->fail("injected");
        // Rank 1's own later collectives fail too.
        for (int i = 0; i < 5; ++i) comm->barrier();
      } catch (const Error& e) {
        out = {true, e.code(), e.message()};
      }
    }, options);
    FAIL() << "run_ranks did not rethrow the failure";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kComm) << e.what();
    EXPECT_NE(e.message().find("rank 1"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("injected"), std::string::npos) << e.what();
  }
  for (int r = 0; r < kRanks; ++r) {
    const Outcome& out = outcomes[static_cast<size_t>(r)];
    EXPECT_TRUE(out.threw) << "rank " << r;
    EXPECT_EQ(out.code, ErrorCode::kComm) << out.message;
    EXPECT_NE(out.message.find("rank 1 failed: injected"), std::string::npos) << "rank " << r << ": " << out.message;
  }
}

TEST(comm_thread, FailureReachesSplitGroups) {
  // World 4 split into {0, 2} and {1, 3}. Rank 0 waits in its group's
  // barrier for rank 2, which is held back; rank 1 (the other group) fails.
  // Rank 0 must see rank 1's failure although rank 1 is not in its group.
  std::vector<Outcome> outcomes(4);
  std::latch release_rank2(1);
  RunRanksOptions options;
  options.timeout = 60s;
  EXPECT_THROW(run_ranks(4, [&](CommPtr comm) {
    const int me = comm->rank();
    Outcome& out = outcomes[static_cast<size_t>(me)];
    CommPtr sub = comm->split(me % 2, me);
    try {
      if (me == 1) throw Error(ErrorCode::kIo, "disk on fire");
      if (me == 2) release_rank2.wait();
      sub->barrier();
    } catch (const Error& e) {
      out = {true, e.code(), e.message()};
      if (me == 0) release_rank2.count_down();
      throw;
    }
  }, options), Error);
  EXPECT_EQ(outcomes[1].code, ErrorCode::kIo);
  for (int r : {0, 2, 3}) {
    const Outcome& out = outcomes[static_cast<size_t>(r)];
    EXPECT_TRUE(out.threw) << "rank " << r;
    EXPECT_EQ(out.code, ErrorCode::kComm) << "rank " << r << ": " << out.message;
    EXPECT_NE(out.message.find("rank 1 failed: disk on fire"), std::string::npos) << "rank " << r << ": " << out.message;
  }
}

TEST(comm_thread, RunRanksRethrowsFirstFailureWithItsCode) {
  try {
    run_ranks(3, [](CommPtr comm) {
      if (comm->rank() == 2) throw Error(ErrorCode::kNotFound, "key 'net1.weight' missing");
      comm->barrier();
    });
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
    EXPECT_EQ(e.message(), "rank 2: key 'net1.weight' missing");
  }
}

TEST(comm_thread, RankThatNeverArrivesTimesOut) {
  // Rank 1 is held back (not returned, so only the deadline can notice) until
  // the others have given up.
  std::latch others_done(2);
  std::vector<Outcome> outcomes(3);
  RunRanksOptions options;
  options.timeout = 500ms;
  try {
    run_ranks(3, [&](CommPtr comm) {
      const int me = comm->rank();
      if (me == 1) {
        others_done.wait();
        return;
      }
      try {
        comm->barrier();
      } catch (const Error& e) {
        outcomes[static_cast<size_t>(me)] = {true, e.code(), e.message()};
        others_done.count_down();
        throw;
      }
      others_done.count_down();
    }, options);
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout) << e.what();
    EXPECT_NE(e.message().find("barrier timed out after 500 ms"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("rank 1 has not arrived"), std::string::npos) << e.what();
  }
  // One of ranks 0 and 2 timed out; the other either timed out as well or
  // was released by that failure (kComm naming it).
  int timeouts = 0;
  for (int r : {0, 2}) {
    const Outcome& out = outcomes[static_cast<size_t>(r)];
    EXPECT_TRUE(out.threw) << "rank " << r;
    EXPECT_NE(out.message.find("timed out"), std::string::npos) << out.message;
    if (out.code == ErrorCode::kTimeout) ++timeouts;
    else EXPECT_EQ(out.code, ErrorCode::kComm) << out.message;
  }
  EXPECT_GE(timeouts, 1);
}

TEST(comm_thread, TimeoutInSplitGroupNamesWorldRanks) {
  std::latch held(1);
  RunRanksOptions options;
  options.timeout = 300ms;
  try {
    run_ranks(4, [&](CommPtr comm) {
      const int me = comm->rank();
      CommPtr sub = comm->split(me % 2, 0);  // {0, 2} and {1, 3}
      if (me == 3) {
        held.wait();
        return;
      }
      try {
        if (me == 1) sub->all_reduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum);
      } catch (const Error&) {
        held.count_down();
        throw;
      }
    }, options);
    FAIL() << "no timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout) << e.what();
    EXPECT_EQ(e.message(),
              "rank 1: all_reduce timed out after 300 ms in a group of 2: rank 3 has not arrived");
  }
}

TEST(comm_thread, RankReturningEarlyFailsTheOthers) {
  RunRanksOptions options;
  options.timeout = 60s;
  try {
    run_ranks(3, [](CommPtr comm) {
      if (comm->rank() == 2) return;  // skips the barrier below
      comm->barrier();
    }, options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kComm) << e.what();
    EXPECT_NE(e.message().find("rank 2: returned from its function without calling barrier"), std::string::npos)
        << e.what();
  }
}

TEST(comm_thread, MismatchedCollectivesFail) {
  RunRanksOptions options;
  options.timeout = 60s;
  try {
    run_ranks(2, [](CommPtr comm) {
      if (comm->rank() == 0) {
        int v = 0;
        comm->broadcast(&v, sizeof(v), 0);
      } else {
        comm->all_gather_v("x");
      }
    }, options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kComm) << e.what();
    EXPECT_NE(e.message().find("while rank"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("broadcast"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("all_gather_v"), std::string::npos) << e.what();
  }
}

TEST(comm_thread, MismatchedArgumentsThrowOnEveryRank) {
  // Every rank reports the same argument error and the group stays usable.
  run_ranks(3, [](CommPtr comm) {
    std::vector<float> v(4, 1.0f);
    const size_t count = comm->rank() == 1 ? 3 : 4;
    try {
      comm->all_reduce(v.data(), count, DType::kFloat32, ReduceOp::kSum);
      ADD_FAILURE() << "no error on rank " << comm->rank();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_EQ(e.message(), "all_reduce: rank 1 passed count 3 but rank 0 passed 4");
    }
    int32_t x = 1;
    comm->all_reduce(&x, 1, DType::kInt32, ReduceOp::kSum);
    EXPECT_EQ(x, 3);
  });
}

TEST(comm_thread, ReductionsAreIdenticalAcrossRuns) {
  // The same inputs give bit-identical float sums in every run and on every rank.
  std::vector<std::vector<float>> results(2);
  for (int run = 0; run < 2; ++run) {
    std::mutex mu;
    run_ranks(5, [&](CommPtr comm) {
      std::vector<float> v(257);
      for (size_t i = 0; i < v.size(); ++i) v[i] = 1.0f / static_cast<float>(i + 3 + comm->rank() * 7);
      comm->all_reduce(v.data(), v.size(), DType::kFloat32, ReduceOp::kSum);
      std::lock_guard lock(mu);
      if (results[static_cast<size_t>(run)].empty()) results[static_cast<size_t>(run)] = v;
      else EXPECT_EQ(results[static_cast<size_t>(run)], v) << "rank " << comm->rank();
    });
  }
  EXPECT_EQ(results[0], results[1]);
}

}  // namespace
}  // namespace dcpp::testing
