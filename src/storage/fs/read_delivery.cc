#include "storage/fs/read_delivery.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Each delivery in a round blob: a record header (chunk id, target, l0, l1),
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


void write_needs(std::vector<WireWriter>& to_home, ReadPlan& plan, const ChunkIds& ids) {
  const int world = static_cast<int>(to_home.size());
  plan.own_ids.clear();
  for (size_t i = 0; i < plan.items.size(); ++i) {
    Item& item = plan.items[i];
    item.chunk_id = ids.id(item.key, item.chunk_index);
    if (!item.needed.empty()) plan.own_ids.push_back({item.chunk_id, i});
  }
  std::sort(plan.own_ids.begin(), plan.own_ids.end());
  std::vector<uint64_t> count(to_home.size(), 0);
  for (const auto& [id, i] : plan.own_ids) ++count[static_cast<size_t>(home_of(id, world))];
  for (size_t h = 0; h < to_home.size(); ++h) to_home[h].u64(count[h]);
  for (const auto& [id, i] : plan.own_ids) {
    const Item& item = plan.items[i];
    WireWriter& w = to_home[static_cast<size_t>(home_of(id, world))];
    w.u64(id);
    w.u64(item.needed.size());
    for (const auto& [f, l] : item.needed) {
      w.u64(f);
      w.u64(l);
    }
    // The boxes, behind their byte count: the home forwards them to the
    // owners unparsed.
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

void HomeItems::read(WireReader& rd, int from, const Blob& blob) {
  const uint64_t count = rd.u64();
  uint64_t last_id = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t id = rd.u64();
    if (i > 0 && id <= last_id) {
      throw Error(ErrorCode::kComm, "read-once exchange: rank " + std::to_string(from) +
                                        " listed its needs out of chunk id order (" + std::to_string(id) + " after " +
                                        std::to_string(last_id) + ")");
    }
    last_id = id;
    const uint64_t n = rd.u64();
    for (uint64_t k = 0; k < n; ++k) {
      const uint64_t f = rd.u64();
      const uint64_t l = rd.u64();
      ranges_.push_back({id, from, f, l});
    }
    const uint64_t nboxes = rd.u64();
    const uint64_t bytes = rd.u64();
    boxes_.push_back({id, from, &blob, rd.position(), nboxes, bytes});
    rd.skip(bytes);
  }
}

bool HomeItems::assign(std::vector<WireWriter>& to_owner, const ChunkIds& ids, int home, int world,
                       uint64_t block_size, const PieceSizes& sizes) {
  // Messages came in rank order and each lists its items in id order: a
  // stable sort by id gives (id, rank) order.
  std::stable_sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.id < b.id; });
  std::stable_sort(boxes_.begin(), boxes_.end(), [](const Boxes& a, const Boxes& b) { return a.id < b.id; });
  std::vector<ItemNeeds> inputs;
  std::vector<uint64_t> id_of;
  for (size_t a = 0; a < ranges_.size();) {
    size_t b = a;
    while (b < ranges_.size() && ranges_[b].id == ranges_[a].id) ++b;
    const ChunkIds::Chunk c = ids.chunk(ranges_[a].id, ranges_[a].rank);
    const ChunkMeta& chunk = c.tensor->chunks[c.chunk_index];
    ItemNeeds in{chunk.location.byte_length, block_size % dtype_size(c.tensor->dtype) == 0, {}};
    in.ranges.reserve(b - a);
    for (size_t k = a; k < b; ++k) in.ranges.push_back({ranges_[k].rank, ranges_[k].first, ranges_[k].last});
    inputs.push_back(std::move(in));
    id_of.push_back(ranges_[a].id);
    a = b;
  }
  const std::vector<Piece> pieces = assign_pieces(inputs, world, sizes, home);
  // Per owner and item: the receivers' boxes, then the pieces. Pieces come
  // item by item; within an item, owners in rank order.
  std::vector<uint64_t> sections(static_cast<size_t>(world), 0);
  std::vector<WireWriter> body(static_cast<size_t>(world));
  std::vector<size_t> order;
  std::vector<int> receivers;
  bool shared = false;
  size_t box_at = 0;
  for (size_t p = 0; p < pieces.size();) {
    const size_t input = pieces[p].item;
    const uint64_t id = id_of[input];
    size_t q = p;
    while (q < pieces.size() && pieces[q].item == input) ++q;
    while (box_at < boxes_.size() && boxes_[box_at].id < id) ++box_at;
    size_t box_end = box_at;
    while (box_end < boxes_.size() && boxes_[box_end].id == id) ++box_end;
    order.resize(q - p);
    for (size_t k = 0; k < order.size(); ++k) order[k] = p + k;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return pieces[x].owner < pieces[y].owner; });
    for (size_t a = 0; a < order.size();) {
      const int owner = pieces[order[a]].owner;
      size_t b = a;
      receivers.clear();
      while (b < order.size() && pieces[order[b]].owner == owner) {
        const Piece& piece = pieces[order[b]];
        receivers.insert(receivers.end(), piece.remote.begin(), piece.remote.end());
        ++b;
      }
      std::sort(receivers.begin(), receivers.end());
      receivers.erase(std::unique(receivers.begin(), receivers.end()), receivers.end());
      shared = shared || !receivers.empty();
      WireWriter& w = body[static_cast<size_t>(owner)];
      ++sections[static_cast<size_t>(owner)];
      w.u64(id);
      w.u64(receivers.size());
      size_t k = box_at;
      for (int r : receivers) {
        while (k < box_end && boxes_[k].rank < r) ++k;
        const bool has = k < box_end && boxes_[k].rank == r;
        w.u64(static_cast<uint64_t>(r));
        w.u64(has ? boxes_[k].count : 0);
        w.u64(has ? boxes_[k].bytes : 0);
        if (has) w.bytes(boxes_[k].blob->data() + boxes_[k].pos, static_cast<size_t>(boxes_[k].bytes));
      }
      w.u64(b - a);
      for (size_t m = a; m < b; ++m) {
        const Piece& piece = pieces[order[m]];
        w.u64(piece.first);
        w.u64(piece.last);
        w.u64(piece.remote.size());
        for (int r : piece.remote) w.u64(static_cast<uint64_t>(r));
      }
      a = b;
    }
    box_at = box_end;
    p = q;
  }
  for (size_t o = 0; o < to_owner.size(); ++o) {
    to_owner[o].u64(sections[o]);
    std::string b = body[o].take();
    to_owner[o].bytes(b.data(), b.size());
  }
  return shared;
}

void read_assignment(WireReader& rd, int home, ReadPlan& plan, const ChunkIds& ids, int rank) {
  const uint64_t sections = rd.u64();
  for (uint64_t s = 0; s < sections; ++s) {
    const uint64_t id = rd.u64();
    const ChunkIds::Chunk c = ids.chunk(id, home);
    const ChunkMeta& chunk = c.tensor->chunks[c.chunk_index];
    const size_t item_index = plan.item_index(*c.key, c.chunk_index, &chunk.location, c.tensor->dtype);
    plan.items[item_index].chunk_id = id;
    const uint64_t nreceivers = rd.u64();
    for (uint64_t k = 0; k < nreceivers; ++k) {
      const uint64_t r = rd.u64();
      const uint64_t count = rd.u64();
      rd.u64();  // bytes
      for (uint64_t b = 0; b < count; ++b) {
        const uint64_t target = rd.u64();
        const uint64_t ndim = rd.u64();
        if (ndim != chunk.sizes.size()) {
          throw Error(ErrorCode::kInternal, "read-once delivery: rank " + std::to_string(r) + " reads a box of " +
                                                std::to_string(ndim) + " dims from chunk " +
                                                std::to_string(c.chunk_index) + " of " + quoted(*c.key));
        }
        Shape offsets(ndim), lengths(ndim);
        for (uint64_t d = 0; d < ndim; ++d) {
          offsets[d] = static_cast<int64_t>(rd.u64());
          lengths[d] = static_cast<int64_t>(rd.u64());
        }
        plan.items[item_index].remote_boxes.push_back(
            {static_cast<int>(r), target, BoxInChunk(chunk.sizes, offsets, lengths, dtype_size(c.tensor->dtype))});
      }
    }
    const uint64_t npieces = rd.u64();
    for (uint64_t k = 0; k < npieces; ++k) {
      Piece piece{item_index, rd.u64(), rd.u64(), rank, {}};
      const uint64_t nremote = rd.u64();
      piece.remote.reserve(static_cast<size_t>(std::min<uint64_t>(nremote, 1 << 20)));
      for (uint64_t m = 0; m < nremote; ++m) piece.remote.push_back(static_cast<int>(rd.u64()));
      if (piece.first > piece.last || piece.last >= chunk.location.block_checksums.size()) {
        throw Error(ErrorCode::kComm, "read-once exchange: rank " + std::to_string(home) + " assigned blocks " +
                                          std::to_string(piece.first) + ".." + std::to_string(piece.last) +
                                          " of chunk " + std::to_string(c.chunk_index) + " of " + quoted(*c.key) +
                                          ", which has " + std::to_string(chunk.location.block_checksums.size()));
      }
      plan.pieces.push_back(std::move(piece));
    }
  }
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
      const uint64_t header[4] = {plan.items[plan.pieces[p].item].chunk_id, d.box->target, d.l0, d.l1};
      std::memcpy(d.blob->data() + d.pos - kRecordHeaderBytes, header, kRecordHeaderBytes);
    }
  }
  return round;
}

namespace {

// Copies elements [l0, l1) of a remote box, held by item bytes from `a`
// on at `window`, contiguously (box order) into the delivery's blob.
void pack(ReadEngine& engine, const Delivery& d, uint64_t a, const std::byte* window) {
  const BoxInChunk& geom = d.box->geom;
  const uint64_t elem = geom.element_size();
  std::byte* out = reinterpret_cast<std::byte*>(d.blob->data()) + d.pos;
  copy_box_range(geom.box_lengths(), d.l0, d.l1, window,
                 static_cast<int64_t>(geom.chunk_byte(0)) - static_cast<int64_t>(a), geom.chunk_strides(), out,
                 -static_cast<int64_t>(d.l0 * elem), geom.box_strides(), elem);
  engine.add_sent((d.l1 - d.l0) * elem);
}

// The receiving side: elements [l0, l1) of this rank's target, packed at `data`.
void unpack(const Target& t, uint64_t l0, uint64_t l1, const std::byte* data) {
  const uint64_t elem = t.geom.element_size();
  const Tensor& dest = t.read->dest;
  if (dest.dtype() == t.read->dtype && dest.device() == Device::kCpu) {
    copy_box_range(t.geom.box_lengths(), l0, l1, data, -static_cast<int64_t>(l0 * elem), t.geom.box_strides(),
                   static_cast<std::byte*>(dest.data_ptr()), 0, dest.strides(), elem);
    return;
  }
  // Another dtype: converted by the tensor copy.
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
  for (const Delivery& d : it->second) pack(engine, d, a, at);
}

void unpack_blob(ReadEngine& engine, const ReadPlan& plan, const std::string& blob, int from, int me) {
  for (size_t at = kRoundHeaderBytes; at + kRecordHeaderBytes <= blob.size();) {
    uint64_t header[4];
    std::memcpy(header, blob.data() + at, kRecordHeaderBytes);
    const uint64_t id = header[0], target = header[1], l0 = header[2], l1 = header[3];
    auto own = std::lower_bound(plan.own_ids.begin(), plan.own_ids.end(), std::make_pair(id, size_t{0}));
    const bool valid = own != plan.own_ids.end() && own->first == id && target < plan.targets.size() && l0 < l1 &&
                       l1 <= plan.targets[target].geom.numel() &&
                       std::find(plan.items[own->second].targets.begin(), plan.items[own->second].targets.end(),
                                 target) != plan.items[own->second].targets.end();
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
