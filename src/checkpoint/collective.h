// Private to the checkpoint layer: the rank group save()/load() run on (a
// communicator, or a single process when there is none) and the collective
// error protocol: each phase's outcome on every rank is exchanged, and every
// rank throws the same error when any rank failed.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/wire.h"
#include "dcpp/comm.h"

namespace dcpp::detail {

class RankGroup {
 public:
  explicit RankGroup(CommPtr comm) : comm_(std::move(comm)) {}
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  std::vector<Blob> gather(const Blob& blob, int root);
  Blob scatter(const std::vector<Blob>& blobs, int root);
  std::vector<Blob> all_gather(const Blob& blob);

 private:
  CommPtr comm_;
};

// Runs fn and reports how it failed (an Error keeps its code; any other
// exception becomes kInternal), or nullopt on success.
std::optional<RankFailure> capture(int rank, const std::function<void()>& fn);

// The one error every rank throws for `failures` (non-empty) in `phase` of
// `operation` ("save" / "load"): names each failing rank and its cause;
// ranks failing with the same cause are listed together. The code is the
// first failing rank's.
Error collective_error(const std::string& operation, const std::string& phase, int world,
                       const std::vector<RankFailure>& failures);

// Every rank's outcome of a phase, exchanged: throws collective_error on
// every rank if any rank failed.
void exchange_status(RankGroup& group, const std::optional<RankFailure>& mine, const std::string& operation,
                     const std::string& phase);

}  // namespace dcpp::detail
