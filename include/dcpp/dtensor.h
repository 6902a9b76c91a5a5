// DeviceMesh, placements and DTensor: PyTorch's torch.distributed.tensor in C++.
//
// A DeviceMesh arranges the ranks of a communicator in an N-d grid and owns
// one sub-communicator per mesh dimension. A DTensor is this rank's local
// piece of a global tensor plus the mesh and one placement per mesh
// dimension: Shard(d) splits tensor dim d in ceil(S/n)-sized chunks (trailing
// ranks may get less or nothing; an empty shard's global offset is S),
// Replicate holds everything, Partial holds a pending sum.
// Ownership: DeviceMesh and DTensor are handles; copies alias (a DTensor's
// copy shares its local tensor's storage). Thread-safety: a mesh is used by
// the one rank (thread) that created it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/tensor.h"

namespace dcpp {

class DeviceMesh {
 public:
  DeviceMesh() = default;
  // Collective over `comm`: splits it into one communicator per mesh dim.
  // prod(shape) must equal comm->size(); ranks laid out row-major.
  DeviceMesh(CommPtr comm, Device device, const Shape& shape, std::vector<std::string> dim_names = {});

  bool defined() const { return impl_ != nullptr; }
  Device device_type() const;
  int ndim() const;
  const Shape& shape() const;
  int64_t size() const;         // number of ranks
  int64_t size(int dim) const;  // ranks along one mesh dim
  const std::vector<std::string>& dim_names() const;
  int dim_index(const std::string& name) const;  // throws for an unknown name
  // This rank's coordinate in the mesh.
  const std::vector<int64_t>& coordinate() const;
  int rank() const;  // rank in comm()
  const CommPtr& comm() const;
  const CommPtr& dim_comm(int dim) const;
  // Same communicator group, shape and dim names.
  bool operator==(const DeviceMesh& other) const;
  bool operator!=(const DeviceMesh& other) const { return !(*this == other); }

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// PyTorch's init_device_mesh: device_type "cpu", "meta" or "cuda" (the mesh's
// device type is kCuda when a GPU is present, the host otherwise, reported
// once: device_from_name). The device type does not yet move tensors: they
// stay on the device they were made on.
DeviceMesh init_device_mesh(CommPtr comm, const std::string& device_type, const Shape& mesh_shape,
                            std::vector<std::string> dim_names = {});

struct Shard {
  int64_t dim = 0;  // may be negative: counts from the end of the tensor's dims
  bool operator==(const Shard&) const = default;
};
struct Replicate {
  bool operator==(const Replicate&) const = default;
};
struct Partial {
  ReduceOp op = ReduceOp::kSum;
  bool operator==(const Partial&) const = default;
};
using Placement = std::variant<Shard, Replicate, Partial>;
using Placements = std::vector<Placement>;
std::string placement_to_string(const Placement& p);  // "Shard(0)", "Replicate()", "Partial(sum)"

// ---- chunk math (docs/design.md §2) ----
struct ChunkExtent {
  int64_t offset = 0;  // global offset; an empty chunk's offset is the dim size
  int64_t length = 0;
};
// Chunk `index` of `num_chunks` over a dim of `size`: c = ceil(size/n),
// [index*c, min((index+1)*c, size)).
ChunkExtent shard_extent(int64_t size, int64_t num_chunks, int64_t index);
struct LocalChunk {
  Shape local_shape;
  Shape global_offset;
};
// The local shape and global offset of the rank at `coordinate` in a mesh of
// `mesh_shape` holding a tensor of `global_shape` with `placements`.
LocalChunk compute_local_shape_and_global_offset(const Shape& global_shape, const Shape& mesh_shape,
                                                 const std::vector<int64_t>& coordinate,
                                                 const Placements& placements);

class DTensor {
 public:
  DTensor() = default;
  // The local tensor must have this rank's local shape for global_shape.
  DTensor(Tensor local, DeviceMesh mesh, Placements placements, Shape global_shape);
  // PyTorch's DTensor.from_local. Without global_shape it is inferred, which
  // is collective over the mesh when any placement is Shard.
  static DTensor from_local(Tensor local, DeviceMesh mesh, Placements placements,
                            std::optional<Shape> global_shape = std::nullopt);

  bool defined() const { return mesh_.defined(); }
  const Tensor& to_local() const { return local_; }
  Tensor& local() { return local_; }
  const DeviceMesh& device_mesh() const { return mesh_; }
  const Placements& placements() const { return placements_; }
  const Shape& shape() const { return global_shape_; }  // global shape
  DType dtype() const { return local_.dtype(); }
  bool is_meta() const { return local_.is_meta(); }
  // This rank's global offset of its local piece.
  Shape global_offset() const;

  // All-gathers (and sums Partial) into the full global tensor on every rank. Collective.
  Tensor full_tensor() const;
  // Converts to other placements on the same mesh. Collective.
  DTensor redistribute(const Placements& placements) const;
  // A deep copy (fresh local storage), same mesh and placements.
  DTensor clone() const;

 private:
  Tensor local_;
  DeviceMesh mesh_;
  Placements placements_;
  Shape global_shape_;
};

// Scatters `tensor` (significant on `src_rank` of the mesh, any shape elsewhere)
// into a DTensor with `placements`. Collective.
DTensor distribute_tensor(const Tensor& tensor, const DeviceMesh& mesh, const Placements& placements,
                          int src_rank = 0);

}  // namespace dcpp
