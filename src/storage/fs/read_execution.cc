#include "storage/fs/read_execution.h"

#include <algorithm>
#include <cstring>

#include "dcpp/error.h"
#include "storage/fs/block_codec.h"
#include "storage/fs/fs_common.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Copies the box elements that item bytes [a, b) hold (at `data`) into
// every destination of this rank that wants them.
void apply(const ReadPlan& plan, size_t item, uint64_t a, uint64_t b, const std::byte* data) {
  for (size_t t : plan.items[item].targets) {
    const Target& target = plan.targets[t];
    const auto [l0, l1] = target.geom.linear_range_in(a, b);
    if (l0 >= l1) continue;
    const Tensor& dest = target.read->dest;
    if (dest.dtype() == target.read->dtype && dest.device() == Device::kCpu) {
      copy_box_range(target.geom.box_lengths(), l0, l1, data,
                     static_cast<int64_t>(target.geom.chunk_byte(0)) - static_cast<int64_t>(a),
                     target.geom.chunk_strides(), static_cast<std::byte*>(dest.data_ptr()), 0, dest.strides(),
                     target.geom.element_size());
      continue;
    }
    // Another dtype: converted by the tensor copy.
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

}  // namespace

AlignedBuffer BufferPool::acquire(size_t size) {
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

void BufferPool::release(AlignedBuffer b) {
  std::lock_guard lock(mutex_);
  free_.push_back(std::move(b));
}

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

void run_op(ReadEngine& engine, const ReadPlan& plan, const Op& op, bool direct, BufferPool& buffers,
            const Deliveries* outgoing) {
  const size_t span = static_cast<size_t>(align_up(op.end, kIoAlignment) - op.begin / kIoAlignment * kIoAlignment);
  AlignedBuffer buffer = buffers.acquire(span + kIoAlignment);
  try {
    const Item& first_item = plan.items[plan.pieces[op.pieces.front()].item];
    // One read may span several items: a file cut short names the one whose bytes are missing.
    auto key_at = [&](uint64_t offset) {
      for (size_t p : op.pieces) {
        const Item& item = plan.items[plan.pieces[p].item];
        const Piece& piece = plan.pieces[p];
        if (stored_span(*item.loc, piece.first, piece.last, plan.block_size).second > offset) return item.key;
      }
      return plan.items[plan.pieces[op.pieces.back()].item].key;
    };
    const std::byte* data = engine.read_span(key_at, *first_item.loc, op.begin, op.end, buffer.data(), direct);
    for (size_t p : op.pieces) {
      const Piece& piece = plan.pieces[p];
      const Item& item = plan.items[piece.item];
      const std::byte* at = data + (stored_span(*item.loc, piece.first, piece.last, plan.block_size).first - op.begin);
      AlignedBuffer decoded;
      if (!item.loc->stored_blocks.empty()) {
        decoded = buffers.acquire(static_cast<size_t>(plan.piece_end(piece) - plan.piece_begin(piece)));
        engine.decode_blocks(item.key, *item.loc, piece.first, piece.last, at, decoded.data());
        at = decoded.data();
      }
      engine.verify_blocks(item.key, *item.loc, piece.first, piece.last, at);
      apply(plan, piece.item, plan.piece_begin(piece), plan.piece_end(piece), at);
      if (outgoing) pack_piece(engine, plan, *outgoing, p, plan.piece_begin(piece), at);
      if (decoded.capacity()) buffers.release(std::move(decoded));
    }
  } catch (...) {
    buffers.release(std::move(buffer));
    throw;
  }
  buffers.release(std::move(buffer));
}

void run_ops(ReadEngine& engine, const ReadPlan& plan, const std::vector<Op>& ops, size_t threads, bool direct) {
  if (ops.empty()) return;
  BufferPool buffers;
  threads = std::min(std::max<size_t>(threads, 1), ops.size());
  if (threads == 1) {
    for (const Op& op : ops) run_op(engine, plan, op, direct, buffers, nullptr);
    return;
  }
  ThreadPool pool(threads);
  std::vector<std::future<void>> futures;
  futures.reserve(ops.size());
  for (const Op& op : ops) {
    futures.push_back(pool.submit([&] { run_op(engine, plan, op, direct, buffers, nullptr); }));
  }
  wait_all(futures);
}

void start_reads(ReadEngine& engine, const ReadPlan& plan, Round& round, const std::vector<Op>& ops, bool direct,
                 ThreadPool& pool, BufferPool& buffers) {
  // The reads run after this returns: `direct` is copied, the rest are the
  // caller's objects, which outlive the pool's tasks.
  for (size_t o : round.ops) {
    round.reads.push_back(
        pool.submit([&, o, direct] { run_op(engine, plan, ops[o], direct, buffers, &round.deliveries); }));
  }
}

// ---- the file I/O ----

ReadEngine::~ReadEngine() = default;

RandomAccessFile& ReadEngine::file(const std::string& name, bool direct) {
  std::lock_guard lock(mutex_);
  Handles& h = files_[name];
  std::unique_ptr<RandomAccessFile>& slot = direct ? h.direct : h.buffered;
  if (slot) return *slot;
  const std::string path = join_path(directory_, name);
  try {
    slot = fs_->open_read(path, {.try_direct = direct});
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    throw Error(ErrorCode::kCorrupt, "data file " + quoted(path) + " named by the metadata is missing (rank " +
                                         std::to_string(rank_) + ")");
  }
  if (direct) {
    if (slot->direct()) {
      direct_used_ = true;
    } else {
      fallback_ = true;
    }
  }
  return *slot;
}

std::byte* ReadEngine::read_span(const std::function<std::string(uint64_t)>& key_at, const StorageLocation& loc,
                                 uint64_t begin, uint64_t end, std::byte* dst, bool direct) {
  RandomAccessFile& handle = file(loc.file, direct);
  uint64_t from = begin, to = end;
  if (handle.direct()) {
    from = begin / kIoAlignment * kIoAlignment;
    to = align_up(end, kIoAlignment);
  }
  // Stop as soon as the needed bytes are in: a direct read rounded up past
  // the end of the file comes back short, and asking again would only
  // return 0 (read_full would).
  size_t got = 0;
  while (from + got < end) {
    const size_t n = handle.read(dst + got, static_cast<size_t>(to - from) - got, from + got);
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
      // An encoded block is named by where its stored bytes start.
      const bool encoded = !loc.stored_blocks.empty();
      const uint64_t where = loc.byte_offset + (encoded ? loc.stored_blocks[b].offset : at);
      throw Error(ErrorCode::kCorrupt,
                  "checksum mismatch for key " + quoted(key) + " in data file " +
                      quoted(join_path(directory_, loc.file)) + " at byte offset " + std::to_string(where) +
                      " (block " + std::to_string(b) + " of the item, " + std::to_string(n) + " bytes" +
                      (encoded ? " decoded from " + std::to_string(loc.stored_blocks[b].length) + " stored" : "") +
                      "; stored " + hex64(loc.block_checksums[b]) + ", computed " + hex64(sum) + "), read by rank " +
                      std::to_string(rank_));
    }
  }
}

Bytes ReadEngine::read_bytes(const std::string& key, const StorageLocation& loc) {
  Bytes out(loc.byte_length);
  if (loc.byte_length == 0) return out;
  const uint64_t last = loc.block_checksums.size() - 1;
  if (loc.stored_blocks.empty()) {
    read_span([&](uint64_t) { return key; }, loc, loc.byte_offset, loc.byte_offset + loc.byte_length, out.data(),
              false);
  } else {
    const auto [begin, end] = stored_span(loc, 0, last, block_size_);
    Bytes stored(end - begin);
    read_span([&](uint64_t) { return key; }, loc, begin, end, stored.data(), false);
    decode_blocks(key, loc, 0, last, stored.data(), out.data());
  }
  verify_blocks(key, loc, 0, last, out.data());
  return out;
}

void ReadEngine::decode_blocks(const std::string& key, const StorageLocation& loc, uint64_t first, uint64_t last,
                               const std::byte* stored, std::byte* out) {
  thread_local BlockDecoder decoder;
  const uint64_t base = loc.stored_blocks[first].offset;
  for (uint64_t b = first; b <= last; ++b) {
    const StoredBlock& sb = loc.stored_blocks[b];
    const uint64_t n = std::min(block_size_, loc.byte_length - b * block_size_);
    const std::byte* src = stored + (sb.offset - base);
    std::byte* dst = out + (b - first) * block_size_;
    std::string problem;
    if (sb.encoding == static_cast<uint8_t>(BlockEncoding::kRaw)) {
      std::memcpy(dst, src, static_cast<size_t>(n));  // the metadata checked length == n
    } else {
      problem = decoder.decode(src, static_cast<size_t>(sb.length), dst, static_cast<size_t>(n));
    }
    if (!problem.empty()) {
      throw Error(ErrorCode::kCorrupt, "corrupt encoded block for key " + quoted(key) + " in data file " +
                                           quoted(join_path(directory_, loc.file)) + " at byte offset " +
                                           std::to_string(loc.byte_offset + sb.offset) + " (block " +
                                           std::to_string(b) + " of the item, " + std::to_string(sb.length) +
                                           " stored bytes): " + problem + "; read by rank " + std::to_string(rank_));
    }
  }
}

}  // namespace dcpp::fs_detail
