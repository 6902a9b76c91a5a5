// Checks of the rank-status protocol (src/comm/rank_status.h), shared by the
// thread backend tests (world sizes 1..5) and the MPI tests. Each check is
// called by every rank of `comm`; the expected errors are literal messages
// built from the world size, not from the code under test.
#pragma once

#include "dcpp/comm.h"

namespace dcpp::testing {

// Every rank succeeds: every rank returns, each body ran once.
void check_rank_status_all_ok(const CommPtr& comm);
// The last rank throws a dcpp::Error.
void check_rank_status_one_error(const CommPtr& comm);
// Two ranks (the first and the last) fail with different codes (world >= 2).
void check_rank_status_two_codes(const CommPtr& comm);
// One rank throws std::runtime_error.
void check_rank_status_std_exception(const CommPtr& comm);
// One rank throws an int.
void check_rank_status_non_standard(const CommPtr& comm);
// A status carried in a caller's own message (write_status / read_statuses).
void check_rank_status_piggyback(const CommPtr& comm);
// decide_on_root: the root's payload or failure (an Error, an int) reaches every rank.
void check_decide_on_root(const CommPtr& comm);

}  // namespace dcpp::testing
