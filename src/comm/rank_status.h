// The rank-status protocol: every rank of a collective step reports whether
// its part succeeded, and if any rank failed, every rank throws the same
// dcpp::Error naming the failed ranks and their causes — so no rank goes on
// alone and none waits in a collective for a rank that gave up.
//
// A failure is captured from any exception: a dcpp::Error keeps its code and
// message; a std::exception and anything else (`throw 42;`) become
// kInternal, so no exception escapes the protocol and leaves the other ranks
// waiting until the communicator's timeout. Callers that exchange messages of
// their own carry their status in them (write_status / read_status) instead
// of a separate exchange. A null communicator is a group of one rank.
//
// Thread-safety: the collective functions are called by every rank of the
// communicator, in the same order, one thread per rank; the rest are pure.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "comm/wire.h"
#include "dcpp/comm.h"
#include "dcpp/error.h"

namespace dcpp::comm_detail {

// One rank's failure.
struct RankFailure {
  int rank = 0;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// How `error` (not null) failed on `rank`.
RankFailure failure_of(int rank, std::exception_ptr error);
// Runs fn; nullopt when it returns, its failure when it throws anything.
std::optional<RankFailure> capture(int rank, const std::function<void()>& fn);

// The byte form of a list of failures (empty: success), appended to a
// message or read from one; read_status names rank `from` in errors.
void write_status(WireWriter& w, const std::vector<RankFailure>& failures);
void write_status(WireWriter& w, const std::optional<RankFailure>& mine);
std::vector<RankFailure> read_status(WireReader& r);
// The failures in blobs (blobs[r] from rank r) that each start with a
// status; for each blob whose status is success, ok(reader, r) reads on
// from just after it.
std::vector<RankFailure> read_statuses(const std::vector<Blob>& blobs,
                                       const std::function<void(WireReader&, int)>& ok = nullptr);

// The one error every rank throws for `failures` (non-empty) in `phase` of
// `operation` ("save", "load"): "<operation> failed on rank 2 (of 4) while
// <phase>: [Code] cause"; ranks failing with the same cause are listed
// together. The code is the first failing rank's.
Error collective_error(const std::string& operation, const std::string& phase, int world,
                       const std::vector<RankFailure>& failures);

// Exchanges every rank's outcome (`mine`: this rank's failure, if any) and
// throws collective_error on every rank if any rank failed.
void exchange_status(Communicator* comm, const std::optional<RankFailure>& mine, const std::string& operation,
                     const std::string& phase);

// Runs fn on every rank, then exchange_status: returns on every rank or
// throws the same Error on every rank.
void run_collective(Communicator* comm, const std::string& operation, const std::string& phase,
                    const std::function<void()>& fn);

// Runs fn on rank `root` only and hands its result, or its failure, to every
// rank: every rank returns the same blob or throws the same Error (the
// root's code and message, "decided by coordinator rank N" added when there
// are other ranks).
Blob decide_on_root(Communicator* comm, int root, const std::function<Blob()>& fn);

}  // namespace dcpp::comm_detail
