#include "comm/rank_status_cases.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "comm/rank_status.h"
#include "dcpp/error.h"

namespace dcpp::testing {
namespace {

using comm_detail::decide_on_root;
using comm_detail::run_collective;

std::string n_of(const CommPtr& comm) { return " (of " + std::to_string(comm->size()) + ")"; }

// Runs `body` on every rank through the protocol and expects exactly
// Error(code, message) on every rank — not a timeout, not another rank's
// kComm — then checks that every rank saw the same error and that the
// communicator still works (no rank was left behind in a collective).
template <typename Body>
void expect_same_error(const CommPtr& comm, Body&& body, ErrorCode code, const std::string& message) {
  std::string seen = "no error";
  try {
    body();
  } catch (const Error& e) {
    seen = std::string(error_code_name(e.code())) + ": " + e.message();
  } catch (...) {
    seen = "an exception that is not a dcpp::Error";
  }
  EXPECT_EQ(seen, std::string(error_code_name(code)) + ": " + message) << "rank " << comm->rank();
  std::vector<Blob> all = comm->all_gather_v(seen);
  for (size_t r = 0; r < all.size(); ++r) EXPECT_EQ(all[r], seen) << "rank " << r << " vs rank " << comm->rank();
}

}  // namespace

void check_rank_status_all_ok(const CommPtr& comm) {
  int ran = 0;
  run_collective(comm.get(), "load", "planning", [&] { ++ran; });
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(decide_on_root(comm.get(), 0, [] { return Blob("ok"); }), "ok");
  run_collective(nullptr, "load", "planning", [&] { ++ran; });  // a group of one
  EXPECT_EQ(ran, 2);
}

void check_rank_status_one_error(const CommPtr& comm) {
  const int last = comm->size() - 1;
  expect_same_error(
      comm,
      [&] {
        run_collective(comm.get(), "load", "reading data", [&] {
          if (comm->rank() == last) throw Error(ErrorCode::kCorrupt, "block 3 of 'w' is bad");
        });
      },
      ErrorCode::kCorrupt,
      "load failed on rank " + std::to_string(last) + n_of(comm) + " while reading data: [Corrupt] block 3 of 'w' is bad");
}

void check_rank_status_two_codes(const CommPtr& comm) {
  const int n = comm->size();
  ASSERT_GE(n, 2);
  const std::string who = n == 2 ? "every rank" : "ranks 0, " + std::to_string(n - 1);
  expect_same_error(
      comm,
      [&] {
        run_collective(comm.get(), "save", "writing data", [&] {
          if (comm->rank() == 0) throw Error(ErrorCode::kIo, "disk full");
          if (comm->rank() == n - 1) throw Error(ErrorCode::kNotFound, "no key 'b'");
        });
      },
      ErrorCode::kIo,
      "save failed on " + who + n_of(comm) + " while writing data; rank 0: [Io] disk full; rank " +
          std::to_string(n - 1) + ": [NotFound] no key 'b'");
}

void check_rank_status_std_exception(const CommPtr& comm) {
  const int failing = 1 % comm->size();
  expect_same_error(
      comm,
      [&] {
        run_collective(comm.get(), "load", "planning", [&] {
          if (comm->rank() == failing) throw std::runtime_error("out of memory");
        });
      },
      ErrorCode::kInternal,
      "load failed on rank " + std::to_string(failing) + n_of(comm) +
          " while planning: [Internal] unexpected exception: out of memory");
}

void check_rank_status_non_standard(const CommPtr& comm) {
  const int failing = comm->size() / 2;
  expect_same_error(
      comm,
      [&] {
        run_collective(comm.get(), "save", "planning", [&] {
          if (comm->rank() == failing) throw 42;
        });
      },
      ErrorCode::kInternal,
      "save failed on rank " + std::to_string(failing) + n_of(comm) +
          " while planning: [Internal] unexpected non-standard exception");
}

void check_rank_status_piggyback(const CommPtr& comm) {
  // Each rank sends its status, then (when it succeeded) a payload of its own.
  const int failing = comm->size() - 1;
  comm_detail::WireWriter w;
  if (comm->rank() == failing) {
    comm_detail::write_status(w, comm_detail::capture(comm->rank(), [] { throw Error(ErrorCode::kIo, "EIO"); }));
  } else {
    comm_detail::write_status(w, std::nullopt);
    w.u64(static_cast<uint64_t>(100 + comm->rank()));
  }
  std::vector<int> payload_from(static_cast<size_t>(comm->size()), -1);
  auto failures = comm_detail::read_statuses(comm->all_gather_v(w.take()), [&](comm_detail::WireReader& r, int from) {
    payload_from[static_cast<size_t>(from)] = static_cast<int>(r.u64());
  });
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].rank, failing);
  EXPECT_EQ(failures[0].code, ErrorCode::kIo);
  EXPECT_EQ(failures[0].message, "EIO");
  for (int r = 0; r < comm->size(); ++r) EXPECT_EQ(payload_from[static_cast<size_t>(r)], r == failing ? -1 : 100 + r);
}

void check_decide_on_root(const CommPtr& comm) {
  const int root = comm->size() - 1;
  const std::string by = comm->size() > 1 ? " (decided by coordinator rank " + std::to_string(root) + ")" : "";
  int ran = 0;
  EXPECT_EQ(decide_on_root(comm.get(), root,
                           [&] {
                             ++ran;
                             return Blob("step 7");
                           }),
            "step 7");
  EXPECT_EQ(ran, comm->rank() == root ? 1 : 0);
  expect_same_error(
      comm, [&] { decide_on_root(comm.get(), root, []() -> Blob { throw Error(ErrorCode::kNotFound, "no step 7"); }); },
      ErrorCode::kNotFound, "no step 7" + by);
  expect_same_error(
      comm, [&] { decide_on_root(comm.get(), root, []() -> Blob { throw 42; }); }, ErrorCode::kInternal,
      "unexpected non-standard exception" + by);
}

}  // namespace dcpp::testing
