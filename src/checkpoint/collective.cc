#include "checkpoint/collective.h"

namespace dcpp::detail {

std::vector<Blob> RankGroup::gather(const Blob& blob, int root) {
  if (!comm_) return {blob};
  return comm_->gather_v(blob, root);
}

Blob RankGroup::scatter(const std::vector<Blob>& blobs, int root) {
  if (!comm_) return blobs.at(0);
  return comm_->scatter_v(blobs, root);
}

}  // namespace dcpp::detail
