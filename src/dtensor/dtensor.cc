#include "dcpp/dtensor.h"

#include <cstring>

#include "dcpp/error.h"

namespace dcpp {

namespace {

// A hyper-rectangle of a global tensor: where one rank's local piece lives.
struct Box {
  Shape offset;
  Shape size;
};

std::vector<int64_t> unravel(int64_t rank, const Shape& mesh_shape) {
  std::vector<int64_t> coord(mesh_shape.size(), 0);
  for (size_t d = mesh_shape.size(); d-- > 0;) {
    coord[d] = rank % mesh_shape[d];
    rank /= mesh_shape[d];
  }
  return coord;
}

// Negative Shard dims count from the end; the result is validated against ndim.
Placements normalize(const Placements& placements, int64_t ndim, size_t mesh_ndim) {
  if (placements.size() != mesh_ndim)
    throw Error(ErrorCode::kInvalidArgument, std::to_string(placements.size()) + " placements for a " +
                                                 std::to_string(mesh_ndim) + "-d mesh");
  Placements out = placements;
  for (auto& p : out) {
    if (auto* s = std::get_if<Shard>(&p)) {
      int64_t d = s->dim < 0 ? s->dim + ndim : s->dim;
      if (d < 0 || d >= ndim)
        throw Error(ErrorCode::kInvalidArgument, "Shard(" + std::to_string(s->dim) + ") out of range for a " +
                                                     std::to_string(ndim) + "-d tensor");
      s->dim = d;
    }
  }
  return out;
}

Box box_of(const Shape& global_shape, const Shape& mesh_shape, const std::vector<int64_t>& coord,
           const Placements& placements) {
  LocalChunk c = compute_local_shape_and_global_offset(global_shape, mesh_shape, coord, placements);
  return Box{std::move(c.global_offset), std::move(c.local_shape)};
}

bool intersect(const Box& a, const Box& b, Box* out) {
  out->offset.resize(a.offset.size());
  out->size.resize(a.offset.size());
  for (size_t d = 0; d < a.offset.size(); ++d) {
    int64_t lo = std::max(a.offset[d], b.offset[d]);
    int64_t hi = std::min(a.offset[d] + a.size[d], b.offset[d] + b.size[d]);
    if (hi <= lo) return false;
    out->offset[d] = lo;
    out->size[d] = hi - lo;
  }
  return true;
}

// The part `sub` of a tensor whose global box is `whole`.
Tensor view_of(const Tensor& t, const Box& whole, const Box& sub) {
  Tensor v = t;
  for (size_t d = 0; d < sub.offset.size(); ++d)
    v = v.narrow(static_cast<int64_t>(d), sub.offset[d] - whole.offset[d], sub.size[d]);
  return v;
}

void append_bytes(Blob& blob, const Tensor& view) {
  Tensor c = view.contiguous();
  size_t n = c.nbytes();
  if (n == 0) return;
  size_t at = blob.size();
  blob.resize(at + n);
  std::memcpy(blob.data() + at, c.data_ptr(), n);
}

template <typename T>
void append_pod(Blob& blob, T v) {
  blob.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
T read_pod(const Blob& blob, size_t& pos) {
  if (pos + sizeof(T) > blob.size())
    throw Error(ErrorCode::kInternal, "distribute_tensor: truncated message from the source rank");
  T v;
  std::memcpy(&v, blob.data() + pos, sizeof(T));
  pos += sizeof(T);
  return v;
}

// Copies `n` bytes into `dst` (contiguous or not) through an aligned
// staging tensor: received blobs carry no alignment guarantee.
void copy_bytes_into(Tensor dst, const char* bytes, size_t n) {
  if (n != dst.nbytes())
    throw Error(ErrorCode::kInternal, "received " + std::to_string(n) + " bytes for a piece of " +
                                          std::to_string(dst.nbytes()) + " bytes " + shape_to_string(dst.shape()));
  if (n == 0) return;
  if (dst.is_contiguous()) {
    std::memcpy(dst.data_ptr(), bytes, n);
    return;
  }
  Tensor staging = Tensor::empty(dst.shape(), dst.dtype());
  std::memcpy(staging.data_ptr(), bytes, n);
  dst.copy_from(staging);
}

// Moves data from `src` boxes to `dst` boxes over the whole mesh (Partial
// counts as Replicate here: the caller has already reduced or kept it).
// Rank q receives each element from the rank p that holds it under `src` and
// has q's coordinate on every mesh dim that `src` does not shard; those
// ranks' source boxes tile the tensor, so every element arrives exactly once
// and replicated data is never fetched from afar when it is local.
Tensor move_boxes(const Tensor& local, const DeviceMesh& mesh, const Shape& global_shape, const Placements& src,
                  const Placements& dst) {
  const Shape& ms = mesh.shape();
  const auto& me = mesh.coordinate();
  Box my_src = box_of(global_shape, ms, me, src);
  Box my_dst = box_of(global_shape, ms, me, dst);
  Tensor out = Tensor::empty(my_dst.size, local.dtype(), local.device());
  if (local.is_meta()) return out;

  std::vector<bool> src_sharded(ms.size(), false);
  bool any_sharded = false;
  for (size_t k = 0; k < ms.size(); ++k) {
    src_sharded[k] = std::holds_alternative<Shard>(src[k]);
    any_sharded = any_sharded || src_sharded[k];
  }
  Box ov;
  if (!any_sharded) {  // every rank already holds its whole destination box
    if (intersect(my_src, my_dst, &ov)) view_of(out, my_dst, ov).copy_from(view_of(local, my_src, ov));
    return out;
  }
  auto same_group = [&](const std::vector<int64_t>& c) {
    for (size_t k = 0; k < ms.size(); ++k)
      if (!src_sharded[k] && c[k] != me[k]) return false;
    return true;
  };
  const int n = static_cast<int>(mesh.size());
  const int my_rank = mesh.rank();
  std::vector<Blob> send(n);
  for (int q = 0; q < n; ++q) {
    auto cq = unravel(q, ms);
    if (!same_group(cq)) continue;
    Box q_dst = box_of(global_shape, ms, cq, dst);
    if (!intersect(my_src, q_dst, &ov)) continue;
    if (q == my_rank)
      view_of(out, my_dst, ov).copy_from(view_of(local, my_src, ov));
    else
      append_bytes(send[q], view_of(local, my_src, ov));
  }
  std::vector<Blob> recv = mesh.comm()->all_to_all_v(send);
  for (int p = 0; p < n; ++p) {
    if (p == my_rank) continue;
    auto cp = unravel(p, ms);
    if (!same_group(cp)) continue;
    Box p_src = box_of(global_shape, ms, cp, src);
    if (!intersect(p_src, my_dst, &ov)) continue;
    copy_bytes_into(view_of(out, my_dst, ov), recv[p].data(), recv[p].size());
  }
  return out;
}

// Partial placements created from non-partial data keep the value on
// coordinate 0 of that mesh dim and zeros elsewhere, so the pending sum is
// exact for every dtype.
bool zero_for_partial(const std::vector<int64_t>& coord, const Placements& created_partial) {
  for (size_t k = 0; k < coord.size(); ++k)
    if (std::holds_alternative<Partial>(created_partial[k]) && coord[k] != 0) return true;
  return false;
}

}  // namespace

std::string placement_to_string(const Placement& p) {
  if (auto* s = std::get_if<Shard>(&p)) return "Shard(" + std::to_string(s->dim) + ")";
  if (std::holds_alternative<Replicate>(p)) return "Replicate()";
  switch (std::get<Partial>(p).op) {
    case ReduceOp::kSum: return "Partial(sum)";
    case ReduceOp::kMax: return "Partial(max)";
    case ReduceOp::kMin: return "Partial(min)";
  }
  return "Partial(?)";
}

ChunkExtent shard_extent(int64_t size, int64_t num_chunks, int64_t index) {
  if (size < 0 || num_chunks <= 0 || index < 0 || index >= num_chunks)
    throw Error(ErrorCode::kInvalidArgument, "shard_extent: chunk " + std::to_string(index) + " of " +
                                                 std::to_string(num_chunks) + " over a dim of " + std::to_string(size));
  int64_t c = (size + num_chunks - 1) / num_chunks;
  int64_t start = std::min(index * c, size);
  int64_t end = std::min((index + 1) * c, size);
  if (end <= start) return ChunkExtent{size, 0};
  return ChunkExtent{start, end - start};
}

LocalChunk compute_local_shape_and_global_offset(const Shape& global_shape, const Shape& mesh_shape,
                                                 const std::vector<int64_t>& coordinate,
                                                 const Placements& placements) {
  if (coordinate.size() != mesh_shape.size())
    throw Error(ErrorCode::kInvalidArgument, "coordinate of " + std::to_string(coordinate.size()) +
                                                 " dims for mesh " + shape_to_string(mesh_shape));
  Placements pl = normalize(placements, static_cast<int64_t>(global_shape.size()), mesh_shape.size());
  LocalChunk out{global_shape, Shape(global_shape.size(), 0)};
  for (size_t i = 0; i < pl.size(); ++i) {
    const auto* s = std::get_if<Shard>(&pl[i]);
    if (!s) continue;
    ChunkExtent e = shard_extent(out.local_shape[s->dim], mesh_shape[i], coordinate[i]);
    out.local_shape[s->dim] = e.length;
    // A later Shard of the same dim subdivides the current local extent; an
    // empty piece gets the out-of-bounds offset S so it never collides with data.
    out.global_offset[s->dim] = e.length == 0 ? global_shape[s->dim] : out.global_offset[s->dim] + e.offset;
  }
  return out;
}

DTensor::DTensor(Tensor local, DeviceMesh mesh, Placements placements, Shape global_shape) {
  if (!mesh.defined()) throw Error(ErrorCode::kInvalidArgument, "DTensor needs a defined DeviceMesh");
  if (!local.defined()) throw Error(ErrorCode::kInvalidArgument, "DTensor needs a defined local tensor");
  placements = normalize(placements, static_cast<int64_t>(global_shape.size()), mesh.ndim());
  LocalChunk c = compute_local_shape_and_global_offset(global_shape, mesh.shape(), mesh.coordinate(), placements);
  if (c.local_shape != local.shape()) {
    std::string pl;
    for (const auto& p : placements) pl += (pl.empty() ? "" : ", ") + placement_to_string(p);
    throw Error(ErrorCode::kInvalidArgument, "DTensor on rank " + std::to_string(mesh.rank()) + ": local shape " +
                                                 shape_to_string(local.shape()) + " but global shape " +
                                                 shape_to_string(global_shape) + " with [" + pl + "] needs " +
                                                 shape_to_string(c.local_shape));
  }
  local_ = std::move(local);
  mesh_ = std::move(mesh);
  placements_ = std::move(placements);
  global_shape_ = std::move(global_shape);
}

DTensor DTensor::from_local(Tensor local, DeviceMesh mesh, Placements placements, std::optional<Shape> global_shape) {
  if (!mesh.defined()) throw Error(ErrorCode::kInvalidArgument, "from_local needs a defined DeviceMesh");
  placements = normalize(placements, local.dim(), mesh.ndim());
  if (!global_shape) {
    // Inner mesh dims subdivide outer ones, so sum the extents innermost first.
    Shape g = local.shape();
    for (int i = mesh.ndim(); i-- > 0;) {
      const auto* s = std::get_if<Shard>(&placements[i]);
      if (!s) continue;
      const CommPtr& c = mesh.dim_comm(i);
      int64_t mine = g[s->dim];
      std::vector<int64_t> all(c->size());
      c->all_gather(&mine, all.data(), sizeof(int64_t));
      int64_t total = 0;
      for (int64_t v : all) total += v;
      g[s->dim] = total;
    }
    global_shape = std::move(g);
  }
  return DTensor(std::move(local), std::move(mesh), std::move(placements), std::move(*global_shape));
}

Shape DTensor::global_offset() const {
  if (!defined()) throw Error(ErrorCode::kInvalidArgument, "global_offset of an undefined DTensor");
  return compute_local_shape_and_global_offset(global_shape_, mesh_.shape(), mesh_.coordinate(), placements_)
      .global_offset;
}

DTensor DTensor::clone() const {
  if (!defined()) return DTensor();
  return DTensor(local_.clone(), mesh_, placements_, global_shape_);
}

DTensor DTensor::redistribute(const Placements& placements) const {
  if (!defined()) throw Error(ErrorCode::kInvalidArgument, "redistribute of an undefined DTensor");
  Placements target = normalize(placements, static_cast<int64_t>(global_shape_.size()), mesh_.ndim());
  if (target == placements_) return *this;
  Tensor cur = local_;
  Placements cur_pl = placements_;
  bool owned = false;
  for (int i = 0; i < mesh_.ndim(); ++i) {
    const auto* from = std::get_if<Partial>(&cur_pl[i]);
    if (!from) continue;
    if (const auto* to = std::get_if<Partial>(&target[i])) {
      if (to->op != from->op)
        throw Error(ErrorCode::kUnsupported, "redistribute from " + placement_to_string(*from) + " to " +
                                                 placement_to_string(*to) + " on mesh dim " + std::to_string(i));
      continue;
    }
    if (!cur.is_meta()) {
      if (!owned) cur = cur.clone();  // never reduce into the caller's storage
      owned = true;
      const DType dt = cur.dtype();
      if (dt == DType::kFloat8E4M3FN || dt == DType::kFloat8E5M2) {
        // Communicators reduce 16-bit and wider floats; widen 8-bit floats
        // exactly, reduce, and round once at the end.
        Tensor wide = cur.to(DType::kFloat32);
        mesh_.dim_comm(i)->all_reduce(wide, from->op);
        cur = wide.to(dt);
      } else {
        mesh_.dim_comm(i)->all_reduce(cur, from->op);
      }
    }
    cur_pl[i] = Replicate{};
  }
  Tensor out = move_boxes(cur, mesh_, global_shape_, cur_pl, target);
  Placements created_partial(target.size(), Replicate{});
  for (size_t i = 0; i < target.size(); ++i)
    if (std::holds_alternative<Partial>(target[i]) && !std::holds_alternative<Partial>(cur_pl[i]))
      created_partial[i] = target[i];
  if (!out.is_meta() && zero_for_partial(mesh_.coordinate(), created_partial)) out.fill_(0);
  return DTensor(std::move(out), mesh_, std::move(target), global_shape_);
}

Tensor DTensor::full_tensor() const {
  if (!defined()) throw Error(ErrorCode::kInvalidArgument, "full_tensor of an undefined DTensor");
  return redistribute(Placements(mesh_.ndim(), Replicate{})).to_local();
}

DTensor distribute_tensor(const Tensor& tensor, const DeviceMesh& mesh, const Placements& placements, int src_rank) {
  if (!mesh.defined()) throw Error(ErrorCode::kInvalidArgument, "distribute_tensor needs a defined DeviceMesh");
  const CommPtr& comm = mesh.comm();
  const int n = comm->size();
  if (src_rank < 0 || src_rank >= n)
    throw Error(ErrorCode::kInvalidArgument, "distribute_tensor: source rank " + std::to_string(src_rank) +
                                                 " outside a mesh of " + std::to_string(n) + " ranks");
  const Shape& ms = mesh.shape();
  const bool mesh_meta = mesh.device_type() == Device::kMeta;
  // Each rank's message: dtype, meta flag, has-data flag, ndim, dims, bytes.
  std::vector<Blob> blobs;
  if (comm->rank() == src_rank) {
    if (!tensor.defined())
      throw Error(ErrorCode::kInvalidArgument, "distribute_tensor: undefined tensor on source rank " +
                                                   std::to_string(src_rank));
    Placements pl = normalize(placements, tensor.dim(), ms.size());
    const bool meta = mesh_meta || tensor.is_meta();
    Box whole{Shape(tensor.dim(), 0), tensor.shape()};
    blobs.resize(n);
    for (int q = 0; q < n; ++q) {
      auto cq = unravel(q, ms);
      const bool has_data = !meta && !zero_for_partial(cq, pl);
      Blob& b = blobs[q];
      append_pod<uint8_t>(b, static_cast<uint8_t>(tensor.dtype()));
      append_pod<uint8_t>(b, meta ? 1 : 0);
      append_pod<uint8_t>(b, has_data ? 1 : 0);
      append_pod<int64_t>(b, tensor.dim());
      for (int64_t s : tensor.shape()) append_pod<int64_t>(b, s);
      if (has_data) append_bytes(b, view_of(tensor, whole, box_of(tensor.shape(), ms, cq, pl)));
    }
  }
  Blob mine = comm->scatter_v(blobs, src_rank);
  size_t pos = 0;
  auto dtype = static_cast<DType>(read_pod<uint8_t>(mine, pos));
  const bool meta = read_pod<uint8_t>(mine, pos) != 0;
  const bool has_data = read_pod<uint8_t>(mine, pos) != 0;
  Shape global(read_pod<int64_t>(mine, pos));
  for (auto& s : global) s = read_pod<int64_t>(mine, pos);
  Placements pl = normalize(placements, static_cast<int64_t>(global.size()), ms.size());
  Box b = box_of(global, ms, mesh.coordinate(), pl);
  Tensor local = Tensor::empty(b.size, dtype, meta ? Device::kMeta : Device::kCpu);
  if (!meta) {
    if (has_data)
      copy_bytes_into(local, mine.data() + pos, mine.size() - pos);
    else
      local.fill_(0);
  }
  return DTensor(std::move(local), mesh, std::move(pl), std::move(global));
}

}  // namespace dcpp
