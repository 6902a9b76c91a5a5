#include "storage/fs/read_delivery.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Each delivery in a round blob: a record header (piece, target, l0, l1),
// then the packed elements, padded to 16.
constexpr size_t kRecordHeaderBytes = 32;

}  // namespace

ChunkIds::ChunkIds(const Metadata& md) {
  base_.reserve(md.tensors.size() + 1);
  tensors_.reserve(md.tensors.size());
  index_.reserve(md.tensors.size());
  uint64_t next = 0;
  for (const auto& [key, tm] : md.tensors) {
    index_.emplace(key, tensors_.size());
    base_.push_back(next);
    tensors_.push_back({&key, &tm});
    next += tm.chunks.size();
  }
  base_.push_back(next);
}

uint64_t ChunkIds::id(const std::string& key, size_t chunk_index) const {
  auto it = index_.find(key);
  if (it == index_.end() || chunk_index >= tensors_[it->second].second->chunks.size()) {
    throw Error(ErrorCode::kInternal, "read-once delivery: this rank reads chunk " + std::to_string(chunk_index) +
                                          " of " + quoted(key) + ", which the checkpoint metadata does not hold");
  }
  return base_[it->second] + chunk_index;
}

ChunkIds::Chunk ChunkIds::chunk(uint64_t id, int from) const {
  if (id >= base_.back()) {
    throw Error(ErrorCode::kComm, "read-once delivery: rank " + std::to_string(from) + " reads chunk id " +
                                      std::to_string(id) + ", which this rank's metadata does not hold (" +
                                      std::to_string(base_.back()) + " chunks)");
  }
  const size_t t = static_cast<size_t>(std::upper_bound(base_.begin(), base_.end(), id) - base_.begin()) - 1;
  return {tensors_[t].first, tensors_[t].second, static_cast<size_t>(id - base_[t])};
}

void Needs::finish() {
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return std::tie(a.id, a.rank, a.first) < std::tie(b.id, b.rank, b.first);
  });
  std::sort(boxes.begin(), boxes.end(),
            [](const Boxes& a, const Boxes& b) { return std::tie(a.id, a.rank) < std::tie(b.id, b.rank); });
}

void write_needs(WireWriter& w, const ReadPlan& plan, const ChunkIds& ids) {
  uint64_t count = 0;
  for (const Item& item : plan.items) count += item.needed.empty() ? 0 : 1;
  w.u64(count);
  for (const Item& item : plan.items) {
    if (item.needed.empty()) continue;
    w.u64(ids.id(item.key, item.chunk_index));
    w.u64(item.needed.size());
    for (const auto& [f, l] : item.needed) {
      w.u64(f);
      w.u64(l);
    }
    // The boxes, behind their byte count: ranks that read nothing for this
    // one skip them unparsed.
    uint64_t bytes = 0;
    for (size_t t : item.targets) bytes += 16 + 16 * plan.targets[t].read->box_offsets.size();
    w.u64(item.targets.size());
    w.u64(bytes);
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
    const uint64_t id = rd.u64();
    const uint64_t n = rd.u64();
    for (uint64_t k = 0; k < n; ++k) {
      const uint64_t f = rd.u64();
      const uint64_t l = rd.u64();
      needs.ranges.push_back({id, from, f, l});
    }
    const uint64_t nboxes = rd.u64();
    const uint64_t bytes = rd.u64();
    needs.boxes.push_back({id, from, rd.position(), nboxes});
    rd.skip(bytes);
  }
}

bool any_shared(const Needs& needs) {
  for (size_t i = 1; i < needs.ranges.size(); ++i) {
    if (needs.ranges[i].id == needs.ranges[i - 1].id && needs.ranges[i].rank != needs.ranges[i - 1].rank) return true;
  }
  return false;
}

namespace {

// Adds rank `from`'s boxes of `item` (chunk `c` of the metadata) to the item's remote boxes.
void add_remote_boxes(Item& item, const ChunkIds::Chunk& c, const Needs::Boxes& boxes, const Blob& blob, int from) {
  const ChunkMeta& chunk = c.tensor->chunks[c.chunk_index];
  const size_t elem = dtype_size(c.tensor->dtype);
  WireReader rd(blob, from, boxes.pos);
  for (uint64_t b = 0; b < boxes.count; ++b) {
    const uint64_t target = rd.u64();
    const uint64_t ndim = rd.u64();
    if (ndim != chunk.sizes.size()) {
      throw Error(ErrorCode::kInternal, "read-once delivery: rank " + std::to_string(from) + " reads a box of " +
                                            std::to_string(ndim) + " dims from chunk " +
                                            std::to_string(c.chunk_index) + " of " + quoted(*c.key));
    }
    Shape offsets(ndim), lengths(ndim);
    for (uint64_t d = 0; d < ndim; ++d) {
      offsets[d] = static_cast<int64_t>(rd.u64());
      lengths[d] = static_cast<int64_t>(rd.u64());
    }
    item.remote_boxes.push_back({from, target, BoxInChunk(chunk.sizes, offsets, lengths, elem)});
  }
}

}  // namespace

void assign_shared(ReadPlan& plan, const Needs& needs, const ChunkIds& ids, int rank, int world,
                   const PieceSizes& sizes) {
  std::vector<ItemNeeds> inputs;
  std::vector<size_t> item_of;         // inputs[i] is plan.items[item_of[i]]
  std::vector<ChunkIds::Chunk> chunk_of;  // and this chunk of the metadata
  std::vector<uint64_t> id_of;            // with this id
  for (size_t a = 0; a < needs.ranges.size();) {
    size_t b = a;
    while (b < needs.ranges.size() && needs.ranges[b].id == needs.ranges[a].id) ++b;
    const ChunkIds::Chunk c = ids.chunk(needs.ranges[a].id, needs.ranges[a].rank);
    const ChunkMeta& chunk = c.tensor->chunks[c.chunk_index];
    const size_t item = plan.item_index(*c.key, c.chunk_index, &chunk.location, c.tensor->dtype);
    ItemNeeds in{chunk.location.byte_length, plan.items[item].splittable, {}};
    in.ranges.reserve(b - a);
    for (size_t k = a; k < b; ++k) in.ranges.push_back({needs.ranges[k].rank, needs.ranges[k].first, needs.ranges[k].last});
    inputs.push_back(std::move(in));
    item_of.push_back(item);
    chunk_of.push_back(c);
    id_of.push_back(needs.ranges[a].id);
    a = b;
  }
  plan.pieces = assign_pieces(inputs, world, sizes);
  // The ranks this rank reads pieces for, item by item (pieces come item by item).
  std::vector<int> receivers;
  for (size_t p = 0; p < plan.pieces.size();) {
    const size_t input = plan.pieces[p].item;
    receivers.clear();
    for (; p < plan.pieces.size() && plan.pieces[p].item == input; ++p) {
      if (plan.pieces[p].owner == rank) receivers.insert(receivers.end(), plan.pieces[p].remote.begin(), plan.pieces[p].remote.end());
    }
    if (receivers.empty()) continue;
    std::sort(receivers.begin(), receivers.end());
    receivers.erase(std::unique(receivers.begin(), receivers.end()), receivers.end());
    Item& item = plan.items[item_of[input]];
    // Boxes are added in rank order: plan_round finds a rank's by binary search.
    for (int r : receivers) {
      const Needs::Boxes key{id_of[input], r, 0, 0};
      auto [lo, hi] = std::equal_range(needs.boxes.begin(), needs.boxes.end(), key, [](const Needs::Boxes& x, const Needs::Boxes& y) {
        return std::tie(x.id, x.rank) < std::tie(y.id, y.rank);
      });
      for (auto it = lo; it != hi; ++it) add_remote_boxes(item, chunk_of[input], *it, needs.blobs[static_cast<size_t>(r)], r);
    }
  }
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
        auto lo = std::lower_bound(item.remote_boxes.begin(), item.remote_boxes.end(), r,
                                   [](const Item::RemoteBox& b, int rank) { return b.rank < rank; });
        for (auto it = lo; it != item.remote_boxes.end() && it->rank == r; ++it) {
          const Item::RemoteBox& box = *it;
          const auto [l0, l1] = box.geom.linear_range_in(plan.piece_begin(piece), plan.piece_end(piece));
          if (l0 >= l1) continue;
          size_t& at = size[static_cast<size_t>(r)];
          round->deliveries[p].push_back({&round->out[static_cast<size_t>(r)], at + kRecordHeaderBytes, &box, l0, l1});
          ++round->pieces;
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
