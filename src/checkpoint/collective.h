// Private to the checkpoint layer: the rank group save()/load() run on (a
// communicator, or a single process when there is none). Each phase's
// outcome on every rank goes through comm/rank_status.h: every rank throws
// the same error when any rank failed.
#pragma once

#include <string>
#include <vector>

#include "comm/rank_status.h"
#include "dcpp/comm.h"

namespace dcpp::detail {

using comm_detail::RankFailure;

class RankGroup {
 public:
  explicit RankGroup(CommPtr comm) : comm_(std::move(comm)) {}
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int size() const { return comm_ ? comm_->size() : 1; }
  // Null for a single process.
  Communicator* comm() const { return comm_.get(); }
  std::vector<Blob> gather(const Blob& blob, int root);
  Blob scatter(const std::vector<Blob>& blobs, int root);

 private:
  CommPtr comm_;
};

}  // namespace dcpp::detail
