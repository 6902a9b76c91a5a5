#include "storage/fs/read_delivery.h"

#include <algorithm>
#include <cstring>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Each delivery in a round blob: a record header (piece, target, l0, l1),
// then the packed elements, padded to 16.
constexpr size_t kRecordHeaderBytes = 32;

}  // namespace

void write_needs(WireWriter& w, const ReadPlan& plan) {
  uint64_t count = 0;
  for (const Item& item : plan.items) count += item.needed.empty() ? 0 : 1;
  w.u64(count);
  for (const Item& item : plan.items) {
    if (item.needed.empty()) continue;
    w.str(item.key);
    w.u64(item.chunk_index);
    w.u64(item.needed.size());
    for (const auto& [f, l] : item.needed) {
      w.u64(f);
      w.u64(l);
    }
    w.u64(item.targets.size());
    for (size_t t : item.targets) {
      const BoxRead& r = *plan.targets[t].read;
      w.u64(t);
      w.u64(r.box_offsets.size());
      for (size_t d = 0; d < r.box_offsets.size(); ++d) {
        w.u64(static_cast<uint64_t>(r.box_offsets[d]));
        w.u64(static_cast<uint64_t>(r.box_lengths[d]));
      }
    }
  }
}

void read_needs(WireReader& rd, int from, Needs& needs) {
  const uint64_t count = rd.u64();
  for (uint64_t i = 0; i < count; ++i) {
    std::string key = rd.str();
    const uint64_t chunk = rd.u64();
    const uint64_t n = rd.u64();
    auto& need = needs[{key, chunk}];
    for (uint64_t k = 0; k < n; ++k) {
      const uint64_t f = rd.u64();
      const uint64_t l = rd.u64();
      need.ranges.push_back({from, f, l});
    }
    const uint64_t nboxes = rd.u64();
    for (uint64_t b = 0; b < nboxes; ++b) {
      RemoteBoxSpec box;
      box.rank = from;
      box.target = rd.u64();
      const uint64_t ndim = rd.u64();
      for (uint64_t d = 0; d < ndim; ++d) {
        box.offsets.push_back(static_cast<int64_t>(rd.u64()));
        box.lengths.push_back(static_cast<int64_t>(rd.u64()));
      }
      need.boxes.push_back(std::move(box));
    }
  }
}

bool any_shared(const Needs& needs) {
  for (const auto& [id, need] : needs) {
    for (const NeededBlocks& r : need.ranges) {
      if (r.rank != need.ranges.front().rank) return true;
    }
  }
  return false;
}

void assign_shared(ReadPlan& plan, const Needs& needs, const Metadata& md, int rank, int world,
                   const PieceSizes& sizes) {
  std::vector<ItemNeeds> inputs;
  std::vector<size_t> item_of;  // inputs[i] is plan.items[item_of[i]]
  inputs.reserve(needs.size());
  item_of.reserve(needs.size());
  for (const auto& [id, need] : needs) {
    const auto& [key, chunk_index] = id;
    auto t = md.tensors.find(key);
    if (t == md.tensors.end() || chunk_index >= t->second.chunks.size()) {
      throw Error(ErrorCode::kInternal, "read-once delivery: another rank reads chunk " + std::to_string(chunk_index) +
                                            " of " + quoted(key) + ", which this rank's metadata does not hold");
    }
    const ChunkMeta& chunk = t->second.chunks[chunk_index];
    const size_t item = plan.item_index(key, chunk_index, &chunk.location, t->second.dtype);
    for (const RemoteBoxSpec& b : need.boxes) {
      if (b.rank == rank) continue;
      if (b.offsets.size() != chunk.sizes.size()) {
        throw Error(ErrorCode::kInternal, "read-once delivery: rank " + std::to_string(b.rank) + " reads a box of " +
                                              std::to_string(b.offsets.size()) + " dims from chunk " +
                                              std::to_string(chunk_index) + " of " + quoted(key));
      }
      plan.items[item].remote_boxes.push_back(
          {b.rank, b.target, BoxInChunk(chunk.sizes, b.offsets, b.lengths, dtype_size(t->second.dtype))});
    }
    inputs.push_back({chunk.location.byte_length, plan.items[item].splittable, need.ranges});
    item_of.push_back(item);
  }
  plan.pieces = assign_pieces(inputs, world, sizes);
  for (Piece& p : plan.pieces) p.item = item_of[p.item];
}

std::unique_ptr<Round> plan_round(const ReadPlan& plan, const std::vector<Op>& ops, size_t& next, int world,
                                  uint64_t round_bytes) {
  auto round = std::make_unique<Round>();
  uint64_t bytes = 0;
  while (next < ops.size() && (round->ops.empty() || bytes + (ops[next].end - ops[next].begin) <= round_bytes)) {
    bytes += ops[next].end - ops[next].begin;
    round->ops.push_back(next++);
  }
  round->more = next < ops.size();
  round->out.resize(static_cast<size_t>(world));
  std::vector<size_t> size(static_cast<size_t>(world), kRoundHeaderBytes);
  for (size_t o : round->ops) {
    for (size_t p : ops[o].pieces) {
      const Piece& piece = plan.pieces[p];
      const Item& item = plan.items[piece.item];
      for (int r : piece.remote) {
        for (const Item::RemoteBox& box : item.remote_boxes) {
          if (box.rank != r) continue;
          const auto [l0, l1] = box.geom.linear_range_in(plan.piece_begin(piece), plan.piece_end(piece));
          if (l0 >= l1) continue;
          size_t& at = size[static_cast<size_t>(r)];
          round->deliveries[p].push_back({&round->out[static_cast<size_t>(r)], at + kRecordHeaderBytes, &box, l0, l1});
          at += kRecordHeaderBytes + align_up((l1 - l0) * box.geom.element_size(), 16);
        }
      }
    }
  }
  for (int r = 0; r < world; ++r) round->out[static_cast<size_t>(r)].assign(size[static_cast<size_t>(r)], '\0');
  for (const auto& [p, list] : round->deliveries) {
    for (const Delivery& d : list) {
      const uint64_t header[4] = {p, d.box->target, d.l0, d.l1};
      std::memcpy(d.blob->data() + d.pos - kRecordHeaderBytes, header, kRecordHeaderBytes);
    }
  }
  return round;
}

namespace {

// Copies elements [l0, l1) of a remote box, held by item bytes from `a`
// on at `window`, contiguously (box order) into the delivery's blob.
void pack(ReadEngine& engine, const Item& item, const Delivery& d, uint64_t a, const std::byte* window) {
  const BoxInChunk& geom = d.box->geom;
  const uint64_t elem = geom.element_size();
  std::byte* out = reinterpret_cast<std::byte*>(d.blob->data()) + d.pos;
  for (const SubBox& sub : decompose_linear_range(geom.box_lengths(), d.l0, d.l1)) {
    const std::byte* src = window + (geom.chunk_byte(sub.linear_begin) - a);
    Tensor from = Tensor::from_blob(const_cast<std::byte*>(src), sub.lengths, item.dtype, geom.chunk_strides());
    Tensor to = Tensor::from_blob(out + (sub.linear_begin - d.l0) * elem, sub.lengths, item.dtype);
    to.copy_from(from);
  }
  engine.add_sent((d.l1 - d.l0) * elem);
}

// The receiving side: elements [l0, l1) of this rank's target, packed at `data`.
void unpack(const Target& t, uint64_t l0, uint64_t l1, const std::byte* data) {
  const uint64_t elem = t.geom.element_size();
  for (const SubBox& sub : decompose_linear_range(t.geom.box_lengths(), l0, l1)) {
    Tensor from = Tensor::from_blob(const_cast<std::byte*>(data + (sub.linear_begin - l0) * elem), sub.lengths,
                                    t.read->dtype);
    Tensor to = t.read->dest;
    for (size_t d = 0; d < sub.offsets.size(); ++d) {
      to = to.narrow(static_cast<int64_t>(d), sub.offsets[d], sub.lengths[d]);
    }
    to.copy_from(from);
  }
}

}  // namespace

void pack_piece(ReadEngine& engine, const ReadPlan& plan, const Deliveries& deliveries, size_t p, uint64_t a,
                const std::byte* at) {
  auto it = deliveries.find(p);
  if (it == deliveries.end()) return;
  const Item& item = plan.items[plan.pieces[p].item];
  for (const Delivery& d : it->second) pack(engine, item, d, a, at);
}

void unpack_blob(ReadEngine& engine, const ReadPlan& plan, const std::string& blob, int from, int me) {
  for (size_t at = kRoundHeaderBytes; at + kRecordHeaderBytes <= blob.size();) {
    uint64_t header[4];
    std::memcpy(header, blob.data() + at, kRecordHeaderBytes);
    const uint64_t p = header[0], target = header[1], l0 = header[2], l1 = header[3];
    const bool valid = p < plan.pieces.size() && target < plan.targets.size() && l0 < l1 &&
                       l1 <= plan.targets[target].geom.numel() &&
                       std::find(plan.items[plan.pieces[p].item].targets.begin(),
                                 plan.items[plan.pieces[p].item].targets.end(),
                                 target) != plan.items[plan.pieces[p].item].targets.end();
    const uint64_t bytes = valid ? (l1 - l0) * plan.targets[target].geom.element_size() : 0;
    if (!valid || blob.size() - at - kRecordHeaderBytes < bytes) {
      throw Error(ErrorCode::kComm, "read-once exchange: malformed delivery from rank " + std::to_string(from) +
                                        " to rank " + std::to_string(me));
    }
    engine.add_received(bytes);
    unpack(plan.targets[target], l0, l1, reinterpret_cast<const std::byte*>(blob.data() + at + kRecordHeaderBytes));
    at += kRecordHeaderBytes + align_up(bytes, 16);
  }
}

}  // namespace dcpp::fs_detail
