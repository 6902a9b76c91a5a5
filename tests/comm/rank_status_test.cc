// The rank-status protocol on thread ranks, world sizes 1..5. The
// communicator's timeout is long (a minute): a rank left waiting would end
// in kTimeout or kComm, which the expected errors rule out.
#include <gtest/gtest.h>

#include <chrono>

#include "comm/rank_status_cases.h"
#include "dcpp/comm.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

void on_sizes(std::initializer_list<int> sizes, void (*check)(const CommPtr&)) {
  for (int n : sizes) {
    SCOPED_TRACE("world size " + std::to_string(n));
    run_ranks(n, [check](CommPtr comm) { check(comm); }, RunRanksOptions{.timeout = std::chrono::minutes(1)});
  }
}

TEST(comm_RankStatus, AllOk) { on_sizes({1, 2, 3, 4, 5}, check_rank_status_all_ok); }
TEST(comm_RankStatus, OneRankFailsWithAnError) { on_sizes({1, 2, 3, 4, 5}, check_rank_status_one_error); }
TEST(comm_RankStatus, TwoRanksFailWithDifferentCodes) { on_sizes({2, 3, 4, 5}, check_rank_status_two_codes); }
TEST(comm_RankStatus, OneRankThrowsStdException) { on_sizes({1, 2, 3, 4, 5}, check_rank_status_std_exception); }
TEST(comm_RankStatus, OneRankThrowsNonStandardException) {
  on_sizes({1, 2, 3, 4, 5}, check_rank_status_non_standard);
}
TEST(comm_RankStatus, StatusCarriedInOwnMessages) { on_sizes({1, 2, 3, 4, 5}, check_rank_status_piggyback); }
TEST(comm_RankStatus, RootDecidesForEveryRank) { on_sizes({1, 2, 3, 4, 5}, check_decide_on_root); }

}  // namespace
}  // namespace dcpp::testing
