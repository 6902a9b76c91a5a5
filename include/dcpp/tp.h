// Tensor parallelism for Linear layers: PyTorch's ColwiseParallel,
// RowwiseParallel and parallelize_module on a 1-d DeviceMesh.
//
// parallelize_module replaces the planned Linears' parameters by DTensors
// (distribute_tensor of rank 0's full parameter; a meta module gets meta
// DTensors with the right local shapes) and installs hooks that lay out the
// activations: a Colwise layer takes a replicated input and yields its shard
// of the last dim, a Rowwise layer takes that shard and yields the replicated
// sum, so a Colwise → ReLU → Rowwise block needs one all-reduce forward and
// one backward. Activations are plain local tensors. The module is changed in
// place and stays owned by the caller. Collective over the mesh.
// Thread-safety: as Module.
#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dcpp/dtensor.h"
#include "dcpp/nn.h"

namespace dcpp {

// Weight Shard(0), bias Shard(0). Forward: local matmul, no communication;
// backward: the input gradient is a partial sum, all-reduced.
struct ColwiseParallel {
  Placement input_layout = Replicate{};   // layout of the input the caller passes
  Placement output_layout = Shard{-1};    // layout of the output the caller receives
};

// Weight Shard(1), bias Replicate. Forward: local matmul, all-reduce, bias
// added once after the sum; backward: no communication.
struct RowwiseParallel {
  Placement input_layout = Shard{-1};
  Placement output_layout = Replicate{};
};

using ParallelStyle = std::variant<ColwiseParallel, RowwiseParallel>;
// Submodule dotted name → style, applied in order.
using ParallelizePlan = std::vector<std::pair<std::string, ParallelStyle>>;

// Error(kNotFound) for a name that is no submodule, Error(kUnsupported) for a
// style on something other than a Linear, Error(kInvalidArgument) for a mesh
// that is not 1-d or a layer already parallelized.
Module& parallelize_module(Module& module, const DeviceMesh& mesh, const ParallelizePlan& plan);

}  // namespace dcpp
