// The rank-status protocol on the mpirun world (ctest runs this binary with
// -np 2, 3 and 4): the same checks as on thread ranks.
#include <gtest/gtest.h>

#include "comm/rank_status_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

TEST(comm_mpi_RankStatus, AllOk) { check_rank_status_all_ok(mpi_test_world()); }
TEST(comm_mpi_RankStatus, OneRankFailsWithAnError) { check_rank_status_one_error(mpi_test_world()); }
TEST(comm_mpi_RankStatus, TwoRanksFailWithDifferentCodes) { check_rank_status_two_codes(mpi_test_world()); }
TEST(comm_mpi_RankStatus, OneRankThrowsStdException) { check_rank_status_std_exception(mpi_test_world()); }
TEST(comm_mpi_RankStatus, OneRankThrowsNonStandardException) { check_rank_status_non_standard(mpi_test_world()); }
TEST(comm_mpi_RankStatus, StatusCarriedInOwnMessages) { check_rank_status_piggyback(mpi_test_world()); }
TEST(comm_mpi_RankStatus, RootDecidesForEveryRank) { check_decide_on_root(mpi_test_world()); }

}  // namespace
}  // namespace dcpp::testing
