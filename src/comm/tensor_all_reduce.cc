// Communicator::all_reduce(Tensor&): the only part of the comm layer that
// needs the Tensor class, kept apart so the collectives build without it.
#include "dcpp/comm.h"
#include "dcpp/error.h"
#include "dcpp/tensor.h"

namespace dcpp {

void Communicator::all_reduce(Tensor& tensor, ReduceOp op) {
  if (!tensor.defined()) {
    throw Error(ErrorCode::kInvalidArgument, "all_reduce(Tensor): undefined tensor on rank " + std::to_string(rank()));
  }
  if (tensor.is_meta()) {
    throw Error(ErrorCode::kInvalidArgument,
                "all_reduce(Tensor): tensor of shape " + shape_to_string(tensor.shape()) +
                    " is on the meta device (no data) on rank " + std::to_string(rank()));
  }
  if (!tensor.is_contiguous()) {
    throw Error(ErrorCode::kInvalidArgument,
                "all_reduce(Tensor): tensor of shape " + shape_to_string(tensor.shape()) +
                    " is not contiguous on rank " + std::to_string(rank()) + " (call contiguous() first)");
  }
  all_reduce(tensor.data_ptr(), static_cast<size_t>(tensor.numel()), tensor.dtype(), op);
}

}  // namespace dcpp
