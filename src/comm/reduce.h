// Element-wise reduction shared by both communicator backends. Inputs are
// combined strictly in the order given (rank order), so every rank and every
// run computes bit-identical results, and the thread and MPI backends agree.
// 16-bit floats accumulate in float32 and round once at the end.
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "dcpp/comm.h"

namespace dcpp::comm_detail {

std::string_view reduce_op_name(ReduceOp op);

// Throws Error(kUnsupported) for dtypes all_reduce cannot combine (bool,
// float8) and Error(kInvalidArgument) for an unknown op; `what` names the call.
void check_reducible(DType dtype, ReduceOp op, const char* what);

// out[i] = op(inputs[0][i], inputs[1][i], ..., inputs[n-1][i]), folded left to
// right. `out` may alias an input only if it is inputs[0].
void reduce_in_order(const void* const* inputs, int n, void* out, size_t count, DType dtype, ReduceOp op);

// "rank 3" / "ranks 1, 2 and 4".
std::string describe_ranks(const std::vector<int>& ranks);

// "12 ms" / "5 min".
std::string describe_duration(std::chrono::milliseconds d);

}  // namespace dcpp::comm_detail
