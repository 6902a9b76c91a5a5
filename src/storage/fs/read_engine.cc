#include "storage/fs/read_engine.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <set>
#include <tuple>
#include <utility>

#include "dcpp/error.h"
#include "dcpp/io_thread_pool.h"
#include "storage/fs/box_math.h"
#include "storage/fs/fs_common.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// A gap between two pieces of one file is read through (instead of issuing
// two reads) when it is small and the bytes wasted so stay under 1/16 of the
// bytes needed, or when it is only the alignment padding between two items.
constexpr uint64_t kMaxGapBytes = 256 << 10;

// A saved item some rank reads from.
struct Item {
  std::string key;
  size_t chunk_index = 0;
  const StorageLocation* loc = nullptr;
  DType dtype = DType::kFloat32;
  bool splittable = true;       // block boundaries fall on element boundaries
  std::vector<size_t> targets;  // this rank's boxes of it
  std::vector<std::pair<uint64_t, uint64_t>> needed;  // this rank's merged block ranges
  // Other ranks' boxes of it (read-once delivery): what an owner packs for them.
  struct RemoteBox {
    int rank;
    uint64_t target;  // index into that rank's own target list
    BoxInChunk geom;
  };
  std::vector<RemoteBox> remote_boxes;
};

struct Target {
  const BoxRead* read;
  BoxInChunk geom;
};

// Blocks [first, last] of one item, read by `owner`.
struct Piece {
  size_t item = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  int owner = 0;
  std::vector<int> remote;  // ranks other than the owner that need it
};

// One pread: file bytes [begin, end) holding whole pieces.
struct Op {
  const std::string* file = nullptr;
  uint64_t begin = 0;
  uint64_t end = 0;
  std::vector<size_t> pieces;
};

std::vector<std::pair<uint64_t, uint64_t>> merge_ranges(std::vector<std::pair<uint64_t, uint64_t>> r) {
  std::sort(r.begin(), r.end());
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, x.second);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

// Aligned buffers reused across ops (page faults on fresh 16 MiB buffers cost
// more than the copy they would feed).
class BufferPool {
 public:
  AlignedBuffer acquire(size_t size) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].capacity() >= size) {
        AlignedBuffer b = std::move(free_[i]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        return b;
      }
    }
    return AlignedBuffer(size);
  }
  void release(AlignedBuffer b) {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mutex_;
  std::vector<AlignedBuffer> free_;
};

// Little-endian byte blobs for the exchanges.
class BlobWriter {
 public:
  void u8(uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void u64(uint64_t v) { s_.append(reinterpret_cast<const char*>(&v), 8); }
  void str(const std::string& v) {
    u64(v.size());
    s_.append(v);
  }
  std::string take() { return std::move(s_); }

 private:
  std::string s_;
};

class BlobReader {
 public:
  explicit BlobReader(const std::string& s, int from) : s_(s), from_(from) {}
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(s_[at_++]);
  }
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::memcpy(&v, s_.data() + at_, 8);
    at_ += 8;
    return v;
  }
  std::string str() {
    uint64_t n = u64();
    need(n);
    std::string v = s_.substr(at_, n);
    at_ += n;
    return v;
  }

 private:
  void need(uint64_t n) {
    if (s_.size() - at_ < n) {
      throw Error(ErrorCode::kComm, "read-once exchange: truncated message from rank " + std::to_string(from_));
    }
  }
  const std::string& s_;
  int from_;
  size_t at_ = 0;
};

void write_failure(BlobWriter& w, std::exception_ptr e) {
  w.u8(1);
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    w.u8(static_cast<uint8_t>(err.code()));
    w.str(err.what());
  } catch (const std::exception& err) {
    w.u8(static_cast<uint8_t>(ErrorCode::kInternal));
    w.str(err.what());
  } catch (...) {
    w.u8(static_cast<uint8_t>(ErrorCode::kInternal));
    w.str("unknown exception");
  }
}

// After an exchange: rethrows this rank's own failure. When only other ranks
// failed, returns true: this rank stops reading and returns normally, and
// the caller's status exchange (load() has one after every phase) reports
// the failing rank and its cause — so the error names the rank that failed,
// not every rank that heard of it.
bool raise_failures(std::exception_ptr mine,
                    const std::vector<std::pair<int, std::pair<ErrorCode, std::string>>>& others) {
  if (mine) std::rethrow_exception(mine);
  return !others.empty();
}

// Waits for every future (no task may outlive what it writes), then
// rethrows the first failure.
void wait_all(std::vector<std::future<void>>& futures) {
  std::exception_ptr first;
  for (auto& f : futures) {
    try {
      f.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  futures.clear();
  if (first) std::rethrow_exception(first);
}

// What one rank asked for, as exchanged: block ranges of each item and its boxes.
struct RemoteBoxSpec {
  int rank = 0;
  uint64_t target = 0;
  Shape offsets;
  Shape lengths;
};
struct ItemNeed {
  std::vector<std::tuple<int, uint64_t, uint64_t>> ranges;  // rank, first block, last block
  std::vector<RemoteBoxSpec> boxes;
};
using Needs = std::map<std::pair<std::string, size_t>, ItemNeed>;

// One packed delivery: the elements [l0, l1) of a remote rank's box that a
// piece holds, at `pos` of the blob for that rank.
struct Delivery {
  std::string* blob = nullptr;
  size_t pos = 0;
  const Item::RemoteBox* box = nullptr;
  uint64_t l0 = 0;
  uint64_t l1 = 0;
};

// One exchange round of read-once delivery: the ops this rank reads in it,
// the blob packed for each rank (deliveries point into them), and the reads
// in flight.
struct Round {
  std::vector<size_t> ops;
  std::vector<std::string> out;
  std::map<size_t, std::vector<Delivery>> deliveries;
  std::vector<std::future<void>> reads;
  bool more = false;  // this rank has ops after this round
};

class Reader {
 public:
  Reader(ReadEngine& engine, const std::vector<BoxRead>& reads, const ReadEngineOptions& options)
      : engine_(engine), reads_(reads), opts_(options), bs_(engine.block_size()) {}

  void run(std::exception_ptr local_error) {
    const bool shared = opts_.comm && opts_.comm->size() > 1;
    if (!local_error) {
      try {
        index_local();
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    if (!shared) {
      if (local_error) std::rethrow_exception(local_error);
      for (size_t i = 0; i < items_.size(); ++i) {
        for (const auto& [first, last] : items_[i].needed) cut(i, first, last, opts_.max_read_bytes, engine_.rank(), {});
      }
      run_private(make_ops());
      return;
    }
    run_shared(local_error);
  }

 private:
  // ---- planning ----

  size_t item_index(const std::string& key, size_t chunk_index, const StorageLocation* loc, DType dtype) {
    auto [it, fresh] = item_ids_.try_emplace({key, chunk_index}, items_.size());
    if (fresh) {
      Item item;
      item.key = key;
      item.chunk_index = chunk_index;
      item.loc = loc;
      item.dtype = dtype;
      item.splittable = bs_ % dtype_size(dtype) == 0;
      items_.push_back(std::move(item));
    }
    return it->second;
  }

  void index_local() {
    targets_.reserve(reads_.size());
    for (const BoxRead& r : reads_) {
      BoxInChunk geom(r.chunk_sizes, r.box_offsets, r.box_lengths, dtype_size(r.dtype));
      if (geom.numel() == 0) continue;
      const size_t i = item_index(r.key, r.chunk_index, r.location, r.dtype);
      items_[i].targets.push_back(targets_.size());
      auto blocks = geom.touched_blocks(bs_);
      items_[i].needed.insert(items_[i].needed.end(), blocks.begin(), blocks.end());
      engine_.add_needed(geom.numel() * geom.element_size());
      targets_.push_back({&r, std::move(geom)});
    }
    for (Item& item : items_) {
      item.needed = merge_ranges(std::move(item.needed));
      // Blocks that cut elements cannot be handed out separately.
      if (!item.splittable && item.needed.size() > 1) {
        item.needed = {{item.needed.front().first, item.needed.back().second}};
      }
    }
  }

  // Adds pieces of blocks [first, last] of `item`, at most `max_bytes` each.
  void cut(size_t item, uint64_t first, uint64_t last, uint64_t max_bytes, int owner, const std::vector<int>& remote) {
    if (!items_[item].splittable) {
      pieces_.push_back({item, first, last, owner, remote});
      return;
    }
    const uint64_t per = std::max<uint64_t>(1, max_bytes / bs_);
    for (uint64_t b = first; b <= last; b += per) {
      pieces_.push_back({item, b, std::min(last, b + per - 1), owner, remote});
    }
  }

  uint64_t piece_begin(const Piece& p) const { return p.first * bs_; }
  uint64_t piece_end(const Piece& p) const { return std::min((p.last + 1) * bs_, items_[p.item].loc->byte_length); }
  uint64_t piece_bytes(const Piece& p) const { return piece_end(p) - piece_begin(p); }

  // This rank's pieces as coalesced reads, interleaved across files so the
  // threads read several files at once.
  std::vector<Op> make_ops() {
    std::vector<size_t> mine;
    for (size_t i = 0; i < pieces_.size(); ++i) {
      if (pieces_[i].owner == engine_.rank()) mine.push_back(i);
    }
    auto file_pos = [&](size_t p) {
      const Piece& piece = pieces_[p];
      const StorageLocation& loc = *items_[piece.item].loc;
      return std::make_pair(std::cref(loc.file), loc.byte_offset + piece_begin(piece));
    };
    std::sort(mine.begin(), mine.end(), [&](size_t a, size_t b) {
      auto pa = file_pos(a), pb = file_pos(b);
      if (pa.first != pb.first) return pa.first < pb.first;
      return pa.second < pb.second;
    });
    std::map<std::string, std::vector<Op>> by_file;
    Op* cur = nullptr;
    uint64_t cur_needed = 0, cur_waste = 0;
    for (size_t p : mine) {
      const Piece& piece = pieces_[p];
      const StorageLocation& loc = *items_[piece.item].loc;
      const uint64_t b = loc.byte_offset + piece_begin(piece);
      const uint64_t e = loc.byte_offset + piece_end(piece);
      bool join = false;
      if (cur && *cur->file == loc.file && b >= cur->end && e - cur->begin <= opts_.max_read_bytes) {
        const uint64_t gap = b - cur->end;
        const bool padding = piece.first == 0 && gap < kIoAlignment && b % kIoAlignment == 0;
        join = padding || (gap <= kMaxGapBytes && (cur_waste + gap) * 16 <= cur_needed + (e - b));
        if (join) cur_waste += gap;
      }
      if (join) {
        cur->end = e;
        cur->pieces.push_back(p);
        cur_needed += e - b;
      } else {
        auto& ops = by_file[loc.file];
        ops.push_back(Op{&loc.file, b, e, {p}});
        cur = &ops.back();
        cur_needed = e - b;
        cur_waste = 0;
      }
    }
    std::vector<Op> ops;
    for (size_t round = 0;; ++round) {
      bool any = false;
      for (auto& [file, list] : by_file) {
        if (round < list.size()) {
          ops.push_back(std::move(list[round]));
          any = true;
        }
      }
      if (!any) break;
    }
    return ops;
  }

  // ---- execution ----

  // Copies the box elements that item bytes [a, b) hold (at `data`) into
  // every destination of this rank that wants them.
  void apply(size_t item, uint64_t a, uint64_t b, const std::byte* data) {
    for (size_t t : items_[item].targets) {
      const Target& target = targets_[t];
      const auto [l0, l1] = target.geom.linear_range_in(a, b);
      if (l0 >= l1) continue;
      for (const SubBox& sub : decompose_linear_range(target.geom.box_lengths(), l0, l1)) {
        const std::byte* src = data + (target.geom.chunk_byte(sub.linear_begin) - a);
        Tensor from = Tensor::from_blob(const_cast<std::byte*>(src), sub.lengths, target.read->dtype,
                                        target.geom.chunk_strides());
        Tensor to = target.read->dest;
        for (size_t d = 0; d < sub.offsets.size(); ++d) {
          to = to.narrow(static_cast<int64_t>(d), sub.offsets[d], sub.lengths[d]);
        }
        to.copy_from(from);
      }
    }
  }

  // Reads, verifies and delivers one op; `outgoing` (may be null) receives
  // the bytes of pieces other ranks need, at the positions laid out for them.
  void run_op(const Op& op, BufferPool& buffers, const std::map<size_t, std::vector<Delivery>>* outgoing) {
    const bool direct = opts_.direct;
    const size_t span = static_cast<size_t>(align_up(op.end, kIoAlignment) - op.begin / kIoAlignment * kIoAlignment);
    AlignedBuffer buffer = buffers.acquire(span + kIoAlignment);
    try {
      const Piece& first_piece = pieces_[op.pieces.front()];
      auto key_at = [&](uint64_t offset) {
        for (size_t p : op.pieces) {
          const Item& item = items_[pieces_[p].item];
          if (item.loc->byte_offset + piece_end(pieces_[p]) > offset) return item.key;
        }
        return items_[pieces_[op.pieces.back()].item].key;
      };
      const std::byte* data =
          engine_.read_span(key_at, *items_[first_piece.item].loc, op.begin, op.end, buffer.data(), direct);
      for (size_t p : op.pieces) {
        const Piece& piece = pieces_[p];
        const Item& item = items_[piece.item];
        const std::byte* at = data + (item.loc->byte_offset + piece_begin(piece) - op.begin);
        engine_.verify_blocks(item.key, *item.loc, piece.first, piece.last, at);
        apply(piece.item, piece_begin(piece), piece_end(piece), at);
        if (outgoing) {
          auto it = outgoing->find(p);
          if (it != outgoing->end()) {
            for (const Delivery& d : it->second) pack(item, d, piece_begin(piece), at);
          }
        }
      }
    } catch (...) {
      buffers.release(std::move(buffer));
      throw;
    }
    buffers.release(std::move(buffer));
  }

  // Copies elements [l0, l1) of a remote box, held by item bytes from `a`
  // on at `window`, contiguously (box order) into the delivery's blob.
  void pack(const Item& item, const Delivery& d, uint64_t a, const std::byte* window) {
    const BoxInChunk& geom = d.box->geom;
    const uint64_t elem = geom.element_size();
    std::byte* out = reinterpret_cast<std::byte*>(d.blob->data()) + d.pos;
    for (const SubBox& sub : decompose_linear_range(geom.box_lengths(), d.l0, d.l1)) {
      const std::byte* src = window + (geom.chunk_byte(sub.linear_begin) - a);
      Tensor from = Tensor::from_blob(const_cast<std::byte*>(src), sub.lengths, item.dtype, geom.chunk_strides());
      Tensor to = Tensor::from_blob(out + (sub.linear_begin - d.l0) * elem, sub.lengths, item.dtype);
      to.copy_from(from);
    }
    engine_.add_sent((d.l1 - d.l0) * elem);
  }

  // The receiving side: elements [l0, l1) of this rank's target, packed at `data`.
  void unpack(size_t target, uint64_t l0, uint64_t l1, const std::byte* data) {
    const Target& t = targets_[target];
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

  void run_private(const std::vector<Op>& ops) {
    if (ops.empty()) return;
    BufferPool buffers;
    const size_t threads = std::min(std::max<size_t>(opts_.threads, 1), ops.size());
    if (threads == 1) {
      for (const Op& op : ops) run_op(op, buffers, nullptr);
      return;
    }
    ThreadPool pool(threads);
    std::vector<std::future<void>> futures;
    futures.reserve(ops.size());
    for (const Op& op : ops) futures.push_back(pool.submit([&, this] { run_op(op, buffers, nullptr); }));
    wait_all(futures);
  }

  // ---- read once, deliver everywhere ----

  void run_shared(std::exception_ptr local_error) {
    Communicator& comm = *opts_.comm;
    const int world = comm.size();
    const int me = comm.rank();
    if (!local_error && !opts_.metadata) {
      local_error = std::make_exception_ptr(
          Error(ErrorCode::kInternal, "read-once delivery needs the checkpoint metadata"));
    }

    // 1. Everyone learns which blocks everyone needs.
    BlobWriter w;
    if (local_error) {
      write_failure(w, local_error);
    } else {
      w.u8(0);
      uint64_t count = 0;
      for (const Item& item : items_) count += item.needed.empty() ? 0 : 1;
      w.u64(count);
      for (const Item& item : items_) {
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
          const BoxRead& r = *targets_[t].read;
          w.u64(t);
          w.u64(r.box_offsets.size());
          for (size_t d = 0; d < r.box_offsets.size(); ++d) {
            w.u64(static_cast<uint64_t>(r.box_offsets[d]));
            w.u64(static_cast<uint64_t>(r.box_lengths[d]));
          }
        }
      }
    }
    std::vector<Blob> all = comm.all_gather_v(w.take());

    // 2. The same assignment on every rank: item by item in key order.
    Needs needs;
    std::vector<std::pair<int, std::pair<ErrorCode, std::string>>> failures;
    for (int r = 0; r < world; ++r) {
      BlobReader rd(all[static_cast<size_t>(r)], r);
      if (rd.u8() != 0) {
        ErrorCode code = static_cast<ErrorCode>(rd.u8());
        failures.push_back({r, {code, rd.str()}});
        continue;
      }
      const uint64_t count = rd.u64();
      for (uint64_t i = 0; i < count; ++i) {
        std::string key = rd.str();
        const uint64_t chunk = rd.u64();
        const uint64_t n = rd.u64();
        auto& need = needs[{key, chunk}];
        for (uint64_t k = 0; k < n; ++k) {
          const uint64_t f = rd.u64();
          const uint64_t l = rd.u64();
          need.ranges.emplace_back(r, f, l);
        }
        const uint64_t nboxes = rd.u64();
        for (uint64_t b = 0; b < nboxes; ++b) {
          RemoteBoxSpec box;
          box.rank = r;
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
    if (failures.empty() && !local_error) {
      try {
        assign(needs, world);
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    if (!failures.empty() && raise_failures(local_error, failures)) return;

    // Every rank takes the same path: the decision depends only on what was
    // exchanged. A saved item wanted by two ranks may share blocks.
    bool any_shared = false;
    for (const auto& [id, need] : needs) {
      for (const auto& [r, f, l] : need.ranges) any_shared = any_shared || r != std::get<0>(need.ranges.front());
    }
    if (!any_shared) {
      // Nothing to deliver (e.g. the same sharding as the save): plain reads,
      // then one status exchange so that a failure on any rank fails all.
      if (!local_error) {
        try {
          run_private(make_ops());
        } catch (...) {
          local_error = std::current_exception();
        }
      }
      BlobWriter sw;
      if (local_error) {
        write_failure(sw, local_error);
      } else {
        sw.u8(0);
      }
      std::vector<Blob> status = comm.all_gather_v(sw.take());
      std::vector<std::pair<int, std::pair<ErrorCode, std::string>>> status_failures;
      for (int r = 0; r < world; ++r) {
        BlobReader rd(status[static_cast<size_t>(r)], r);
        if (rd.u8() != 0) {
          ErrorCode code = static_cast<ErrorCode>(rd.u8());
          status_failures.push_back({r, {code, rd.str()}});
        }
      }
      raise_failures(local_error, status_failures);
      return;  // another rank's failure: load()'s status exchange reports it
    }

    // 3. Rounds: read my share, exchange, apply what others read for me.
    // Pipelined: the reads of the next kRoundsInFlight - 1 rounds are queued
    // behind the current one's, so the reader threads never wait for the
    // exchange, and the disk never waits for a round's slowest read. The
    // pool is declared after the rounds and buffers its tasks use: its
    // destructor finishes them first, whatever way this function ends.
    constexpr size_t kRoundsInFlight = 2;
    std::vector<Op> ops = local_error ? std::vector<Op>{} : make_ops();
    size_t next = 0;
    BufferPool buffers;
    std::deque<std::unique_ptr<Round>> rounds;  // the front one is exchanged next
    ThreadPool pool(std::max<size_t>(opts_.threads, 1));
    while (true) {
      // A rank with nothing left still takes part in the others' rounds.
      auto add_round = [&] {
        rounds.push_back(plan_round(ops, next, world));
        if (!local_error) start_reads(*rounds.back(), ops, pool, buffers);
      };
      if (rounds.empty()) add_round();
      while (!local_error && rounds.size() < kRoundsInFlight && rounds.back()->more) add_round();
      Round& current = *rounds.front();
      if (!local_error) {
        try {
          wait_all(current.reads);
        } catch (...) {
          local_error = std::current_exception();
        }
      }
      for (int r = 0; r < world; ++r) {
        std::string& blob = current.out[static_cast<size_t>(r)];
        if (local_error) {
          BlobWriter fw;
          write_failure(fw, local_error);
          blob = fw.take();
        } else {
          blob[0] = 0;
          blob[1] = current.more ? 1 : 0;
        }
      }
      std::vector<Blob> in = comm.all_to_all_v(std::move(current.out));
      current.out.clear();

      bool anyone_more = false;
      std::vector<std::pair<int, std::pair<ErrorCode, std::string>>> round_failures;
      for (int r = 0; r < world; ++r) {
        BlobReader rd(in[static_cast<size_t>(r)], r);
        if (rd.u8() != 0) {
          ErrorCode code = static_cast<ErrorCode>(rd.u8());
          round_failures.push_back({r, {code, rd.str()}});
          continue;
        }
        anyone_more = anyone_more || rd.u8() != 0;
      }
      if ((local_error || !round_failures.empty()) && raise_failures(local_error, round_failures)) return;
      for (int r = 0; r < world; ++r) unpack_blob(in[static_cast<size_t>(r)], r, me);
      rounds.pop_front();
      if (!anyone_more) break;
    }
  }

  // Picks the ops of the next round (at most round_bytes, at least one op
  // when any is left) and lays out its outgoing blobs: a 16-byte header,
  // then per delivery a 32-byte record header (piece, target, l0, l1) and
  // the packed elements, padded to 16.
  std::unique_ptr<Round> plan_round(const std::vector<Op>& ops, size_t& next, int world) {
    auto round = std::make_unique<Round>();
    uint64_t bytes = 0;
    while (next < ops.size() && (round->ops.empty() || bytes + (ops[next].end - ops[next].begin) <= opts_.round_bytes)) {
      bytes += ops[next].end - ops[next].begin;
      round->ops.push_back(next++);
    }
    round->more = next < ops.size();
    round->out.resize(static_cast<size_t>(world));
    std::vector<size_t> size(static_cast<size_t>(world), 16);
    for (size_t o : round->ops) {
      for (size_t p : ops[o].pieces) {
        const Piece& piece = pieces_[p];
        const Item& item = items_[piece.item];
        for (int r : piece.remote) {
          for (const Item::RemoteBox& box : item.remote_boxes) {
            if (box.rank != r) continue;
            const auto [l0, l1] = box.geom.linear_range_in(piece_begin(piece), piece_end(piece));
            if (l0 >= l1) continue;
            size_t& at = size[static_cast<size_t>(r)];
            round->deliveries[p].push_back({&round->out[static_cast<size_t>(r)], at + 32, &box, l0, l1});
            at += 32 + align_up((l1 - l0) * box.geom.element_size(), 16);
          }
        }
      }
    }
    for (int r = 0; r < world; ++r) round->out[static_cast<size_t>(r)].assign(size[static_cast<size_t>(r)], '\0');
    for (const auto& [p, list] : round->deliveries) {
      for (const Delivery& d : list) {
        const uint64_t header[4] = {p, d.box->target, d.l0, d.l1};
        std::memcpy(d.blob->data() + d.pos - 32, header, 32);
      }
    }
    return round;
  }

  void start_reads(Round& round, const std::vector<Op>& ops, ThreadPool& pool, BufferPool& buffers) {
    for (size_t o : round.ops) {
      round.reads.push_back(pool.submit([&, o] { run_op(ops[o], buffers, &round.deliveries); }));
    }
  }

  // Applies every delivery in a blob received from rank `from`, on the
  // calling thread (the pool is busy reading the next round).
  void unpack_blob(const std::string& blob, int from, int me) {
    for (size_t at = 16; at + 32 <= blob.size();) {
      uint64_t header[4];
      std::memcpy(header, blob.data() + at, 32);
      const uint64_t p = header[0], target = header[1], l0 = header[2], l1 = header[3];
      const bool valid = p < pieces_.size() && target < targets_.size() && l0 < l1 &&
                         l1 <= targets_[target].geom.numel() &&
                         std::find(items_[pieces_[p].item].targets.begin(), items_[pieces_[p].item].targets.end(),
                                   target) != items_[pieces_[p].item].targets.end();
      const uint64_t bytes = valid ? (l1 - l0) * targets_[target].geom.element_size() : 0;
      if (!valid || blob.size() - at - 32 < bytes) {
        throw Error(ErrorCode::kComm, "read-once exchange: malformed delivery from rank " + std::to_string(from) +
                                          " to rank " + std::to_string(me));
      }
      engine_.add_received(bytes);
      unpack(target, l0, l1, reinterpret_cast<const std::byte*>(blob.data() + at + 32));
      at += 32 + align_up(bytes, 16);
    }
  }

  void assign(const Needs& needs, int world) {
    const Metadata& md = *opts_.metadata;
    std::vector<uint64_t> load(static_cast<size_t>(world), 0);
    std::vector<std::pair<size_t, std::vector<int>>> shared;  // piece, needers
    for (const auto& [id, need] : needs) {
      const auto& list = need.ranges;
      const auto& [key, chunk_index] = id;
      auto t = md.tensors.find(key);
      if (t == md.tensors.end() || chunk_index >= t->second.chunks.size()) {
        throw Error(ErrorCode::kInternal, "read-once delivery: another rank reads chunk " +
                                              std::to_string(chunk_index) + " of " + quoted(key) +
                                              ", which this rank's metadata does not hold");
      }
      const ChunkMeta& chunk = t->second.chunks[chunk_index];
      const size_t item = item_index(key, chunk_index, &chunk.location, t->second.dtype);
      for (const RemoteBoxSpec& b : need.boxes) {
        if (b.rank == engine_.rank()) continue;
        if (b.offsets.size() != chunk.sizes.size()) {
          throw Error(ErrorCode::kInternal, "read-once delivery: rank " + std::to_string(b.rank) + " reads a box of " +
                                                std::to_string(b.offsets.size()) + " dims from chunk " +
                                                std::to_string(chunk_index) + " of " + quoted(key));
        }
        items_[item].remote_boxes.push_back(
            {b.rank, b.target, BoxInChunk(chunk.sizes, b.offsets, b.lengths, dtype_size(t->second.dtype))});
      }
      // Segments of constant needer sets.
      std::vector<uint64_t> cuts;
      uint64_t lo = UINT64_MAX, hi = 0;
      for (const auto& [r, f, l] : list) {
        cuts.push_back(f);
        cuts.push_back(l + 1);
        lo = std::min(lo, f);
        hi = std::max(hi, l);
      }
      std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::vector<int>>> segments;
      if (!items_[item].splittable) {
        std::set<int> ranks;
        for (const auto& [r, f, l] : list) ranks.insert(r);
        segments.push_back({{lo, hi}, std::vector<int>(ranks.begin(), ranks.end())});
      } else {
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        for (size_t c = 0; c + 1 < cuts.size(); ++c) {
          std::set<int> ranks;
          for (const auto& [r, f, l] : list) {
            if (f <= cuts[c] && cuts[c] <= l) ranks.insert(r);
          }
          if (ranks.empty()) continue;
          std::vector<int> who(ranks.begin(), ranks.end());
          if (!segments.empty() && segments.back().second == who && segments.back().first.second + 1 == cuts[c]) {
            segments.back().first.second = cuts[c + 1] - 1;
          } else {
            segments.push_back({{cuts[c], cuts[c + 1] - 1}, std::move(who)});
          }
        }
      }
      for (auto& [range, who] : segments) {
        const size_t before = pieces_.size();
        if (who.size() == 1) {
          cut(item, range.first, range.second, opts_.max_read_bytes, who.front(), {});
          for (size_t p = before; p < pieces_.size(); ++p) load[static_cast<size_t>(who.front())] += piece_bytes(pieces_[p]);
        } else {
          cut(item, range.first, range.second, opts_.share_piece_bytes, -1, {});
          for (size_t p = before; p < pieces_.size(); ++p) shared.push_back({p, who});
        }
      }
    }
    // Shared pieces go to the needer with the fewest bytes so far, after
    // the pieces only one rank needs are counted.
    for (auto& [p, who] : shared) {
      int best = who.front();
      for (int r : who) {
        if (load[static_cast<size_t>(r)] < load[static_cast<size_t>(best)]) best = r;
      }
      pieces_[p].owner = best;
      load[static_cast<size_t>(best)] += piece_bytes(pieces_[p]);
      for (int r : who) {
        if (r != best) pieces_[p].remote.push_back(r);
      }
    }
  }

  ReadEngine& engine_;
  const std::vector<BoxRead>& reads_;
  const ReadEngineOptions& opts_;
  const uint64_t bs_;
  std::map<std::pair<std::string, size_t>, size_t> item_ids_;
  std::vector<Item> items_;
  std::vector<Target> targets_;
  std::vector<Piece> pieces_;
};

}  // namespace

ReadEngine::ReadEngine(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank)
    : fs_(fs ? std::move(fs) : default_file_system()),
      directory_(std::move(directory)),
      block_size_(block_size),
      rank_(rank) {
  if (block_size_ == 0) throw Error(ErrorCode::kInvalidArgument, "ReadEngine: block size 0");
}

ReadEngine::~ReadEngine() {
  for (auto& [name, h] : files_) {
    for (FileHandle* f : {&h.buffered, &h.direct}) {
      try {
        fs_->close(*f);
      } catch (...) {
        // Read-only descriptors: nothing to lose on a failed close.
      }
    }
  }
}

const FileHandle& ReadEngine::file(const std::string& name, bool direct) {
  std::lock_guard lock(mutex_);
  Handles& h = files_[name];
  FileHandle& slot = direct ? h.direct : h.buffered;
  if (slot.valid()) return slot;
  const std::string path = join_path(directory_, name);
  OpenFlags flags = OpenFlags::read_only();
  flags.try_direct = direct;
  try {
    slot = fs_->open(path, flags);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    throw Error(ErrorCode::kCorrupt, "data file " + quoted(path) + " named by the metadata is missing (rank " +
                                         std::to_string(rank_) + ")");
  }
  if (direct) {
    if (slot.direct) {
      direct_used_ = true;
    } else {
      fallback_ = true;
    }
  }
  return slot;
}

std::byte* ReadEngine::read_span(const std::function<std::string(uint64_t)>& key_at, const StorageLocation& loc,
                                 uint64_t begin, uint64_t end, std::byte* dst, bool direct) {
  const FileHandle& handle = file(loc.file, direct);
  uint64_t from = begin, to = end;
  if (handle.direct) {
    from = begin / kIoAlignment * kIoAlignment;
    to = align_up(end, kIoAlignment);
  }
  // Stop as soon as the needed bytes are in: a direct read rounded up past
  // the end of the file comes back short, and asking again would only
  // return 0 (read_full would).
  size_t got = 0;
  while (from + got < end) {
    const size_t n = fs_->pread(handle, dst + got, static_cast<size_t>(to - from) - got, from + got);
    ++io_calls_;
    if (n == 0) break;
    got += n;
  }
  bytes_read_ += got;
  if (from + got < end) {
    throw Error(ErrorCode::kCorrupt,
                "data file " + quoted(join_path(directory_, loc.file)) + " is shorter than the metadata says: key " +
                    quoted(key_at(from + got)) + " needs bytes up to offset " + std::to_string(end) +
                    " but the file ends at byte offset " + std::to_string(from + got) + " (rank " +
                    std::to_string(rank_) + ")");
  }
  return dst + (begin - from);
}

void ReadEngine::verify_blocks(const std::string& key, const StorageLocation& loc, uint64_t first, uint64_t last,
                               const std::byte* data) {
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t at = b * block_size_;
    const uint64_t n = std::min(block_size_, loc.byte_length - at);
    const uint64_t sum = hash64(data + (at - first * block_size_), static_cast<size_t>(n));
    if (sum != loc.block_checksums[b]) {
      throw Error(ErrorCode::kCorrupt,
                  "checksum mismatch for key " + quoted(key) + " in data file " +
                      quoted(join_path(directory_, loc.file)) + " at byte offset " +
                      std::to_string(loc.byte_offset + at) + " (block " + std::to_string(b) + " of the item, " +
                      std::to_string(n) + " bytes; stored " + hex64(loc.block_checksums[b]) + ", computed " +
                      hex64(sum) + "), read by rank " + std::to_string(rank_));
    }
  }
}

void ReadEngine::read(const std::vector<BoxRead>& reads, const ReadEngineOptions& options,
                      std::exception_ptr local_error) {
  Reader(*this, reads, options).run(local_error);
}

Bytes ReadEngine::read_bytes(const std::string& key, const StorageLocation& loc) {
  Bytes out(loc.byte_length);
  if (loc.byte_length == 0) return out;
  read_span([&](uint64_t) { return key; }, loc, loc.byte_offset, loc.byte_offset + loc.byte_length, out.data(), false);
  verify_blocks(key, loc, 0, loc.block_checksums.size() - 1, out.data());
  return out;
}

StorageIoStats ReadEngine::stats() const {
  StorageIoStats s;
  s.bytes_read = bytes_read_;
  s.bytes_needed = bytes_needed_;
  s.bytes_sent = bytes_sent_;
  s.bytes_received = bytes_received_;
  s.io_calls = io_calls_;
  s.direct = direct_used_;
  s.buffered_fallback = fallback_;
  return s;
}

void ReadEngine::reset_stats() {
  bytes_read_ = bytes_needed_ = bytes_sent_ = bytes_received_ = io_calls_ = 0;
}

}  // namespace dcpp::fs_detail
