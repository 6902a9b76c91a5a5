// FileSystemWriter: data files into a staging directory, metadata last,
// then an atomic swap into place (docs/format.md, "Commit protocol"); on a
// store without rename, per-save object names and the metadata object as
// the commit (object_commit.h).
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <span>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/s3_file_system.h"
#include "io/thread_pool.h"
#include "storage/fs/block_codec.h"
#include "storage/fs/box_math.h"
#include "storage/fs/fs_common.h"
#include "storage/fs/object_commit.h"

#ifndef DCPP_VERSION
#define DCPP_VERSION "unknown"
#endif

namespace dcpp {
namespace {

using fs_detail::join_path;

using paths::split_parent;

using paths::parent_of;

using fs_detail::is_data_file_name;

const std::string kTempMetadataName = std::string(kMetadataFileName) + ".tmp";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

std::string data_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "data-%05d.bin", rank);
  return buf;
}

std::string staging_path(const std::string& path) {
  auto [parent, name] = split_parent(path);
  return join_path(parent, "." + name + ".dcpp-staging");
}

CheckpointState checkpoint_state(FileSystem& fs, const std::string& path) {
  FileType type = fs.file_type(path);
  if (type == FileType::kNone) return CheckpointState::kMissing;
  if (type != FileType::kDirectory) return CheckpointState::kForeign;
  std::vector<std::string> names = fs.list_dir(path);
  if (names.empty()) return CheckpointState::kEmpty;
  if (std::find(names.begin(), names.end(), std::string(kMetadataFileName)) != names.end()) {
    return fs.file_type(join_path(path, std::string(kMetadataFileName))) == FileType::kRegular
               ? CheckpointState::kComplete
               : CheckpointState::kForeign;
  }
  for (const auto& name : names) {
    if (!is_data_file_name(name) && name != kTempMetadataName) return CheckpointState::kForeign;
  }
  return CheckpointState::kIncomplete;
}

std::string set_aside_path(const std::string& path) {
  auto [parent, name] = split_parent(path);
  return join_path(parent, "." + name + ".dcpp-old");
}

std::string resolve_checkpoint_dir(FileSystem& fs, const std::string& path) {
  // Every rank of a load calls this: two stats, no directory listing.
  if (fs.file_type(path) != FileType::kNone) return path;
  const std::string aside = set_aside_path(path);
  return fs.file_type(join_path(aside, std::string(kMetadataFileName))) == FileType::kRegular ? aside : path;
}

bool restore_set_aside_checkpoint(FileSystem& fs, const std::string& path) {
  const std::string aside = resolve_checkpoint_dir(fs, path);
  if (aside == path) return false;
  fs.rename(aside, path);
  fs.fsync_dir(parent_of(path));
  return true;
}

FileSystemWriter::FileSystemWriter(std::string path, FileSystemWriterOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  if (path_.empty()) throw Error(ErrorCode::kInvalidArgument, "FileSystemWriter: empty checkpoint path");
  if (options_.block_size == 0) throw Error(ErrorCode::kInvalidArgument, "FileSystemWriter: block_size must be > 0");
  if (options_.compress && (options_.block_size % kIoAlignment != 0 || options_.block_size > (64u << 20))) {
    throw Error(ErrorCode::kInvalidArgument, "FileSystemWriter: compression needs a block_size that is a multiple of " +
                                                 std::to_string(kIoAlignment) + " and at most 64 MiB, not " +
                                                 std::to_string(options_.block_size));
  }
  fs_ = options_.filesystem ? options_.filesystem : file_system_for_path(path_);
  // Without rename there is no staging directory: objects go straight under
  // the checkpoint's prefix, named per save.
  object_commit_ = !fs_->atomic_rename();
  staging_ = object_commit_ ? path_ : staging_path(path_);
  set_up(0, 1, true);
}

FileSystemWriter::~FileSystemWriter() = default;

void FileSystemWriter::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  world_size_ = world_size;
  is_coordinator_ = is_coordinator;
  wrote_data_file_ = false;
  prepared_ = false;
  data_file_ = object_commit_ ? fs_detail::per_save_data_file_name(rank, fs_detail::new_save_token())
                              : data_file_name(rank);
}

void FileSystemWriter::check_target_replaceable(CheckpointState state) const {
  if (state == CheckpointState::kForeign) {
    throw Error(ErrorCode::kInvalidArgument,
                quoted(path_) + " exists and is not a dcpp checkpoint (it is not a directory, or it holds files a "
                                "dcpp save does not write); refusing to replace it");
  }
  if (state == CheckpointState::kComplete && !options_.overwrite) {
    throw Error(ErrorCode::kInvalidArgument,
                "a complete checkpoint already exists at " + quoted(path_) + " and overwrite is false");
  }
}

void FileSystemWriter::prepare() {
  if (object_commit_) {
    const CheckpointState state = checkpoint_state(*fs_, path_);
    check_target_replaceable(state);
    // Creating a checkpoint is exclusive: a save that finds one complete at
    // commit time fails instead of replacing it.
    exclusive_commit_ = state != CheckpointState::kComplete;
    prepared_ = true;
    return;
  }
  // A save that crashed between the two renames of a swap without
  // RENAME_EXCHANGE left the previous checkpoint aside: put it back first.
  restore_set_aside_checkpoint(*fs_, path_);
  check_target_replaceable(checkpoint_state(*fs_, path_));
  fs_->create_directories(parent_of(path_));
  // A staging directory left by a crashed save holds nothing of value: the
  // target still has the last complete checkpoint.
  fs_->remove_all(staging_);
  fs_->mkdir(staging_);
  prepared_ = true;
}

namespace {

// One item of the final plan, resolved on the calling thread (planners are
// not thread-safe) and laid out in the file before any byte is written.
struct LaidOutItem {
  const WriteItem* item = nullptr;
  Tensor tensor;      // tensors: the local chunk (any strides, any dtype)
  Bytes value;        // values: the encoded bytes
  const std::byte* contiguous = nullptr;  // the item's bytes as stored, when memory already holds them so
  uint64_t length = 0;
  uint64_t offset = 0;  // in the data file
  std::vector<uint64_t> checksums;
  std::vector<StoredBlock> stored;  // compressed saves: how each block is stored
  uint64_t stored_block_size = 0;
  unsigned width = 1;  // byte groups of the encoding
  std::optional<std::array<uint64_t, 2>> content_hash;
  const StorageLocation* reference = nullptr;  // incremental saves: unchanged, stored by the base
};

// A range of one item (whole checksum blocks, except an item's last) that one
// writer thread writes and checksums.
struct WriteUnit {
  size_t item = 0;
  uint64_t begin = 0;  // byte range inside the item
  uint64_t end = 0;
};

// Compressed saves: a unit's stored size is known only once it is encoded,
// so units take their place in the file in unit order, each at the next
// page-aligned offset (direct I/O), while the encoding itself runs in
// parallel. A unit waits only for lower-numbered units, which other threads
// already hold, so the order cannot deadlock.
class FilePlacer {
 public:
  // Returns the file offset of unit `u` (stored_size bytes), or nullopt when
  // the save is failing. Sets the item's offset at its first unit.
  std::optional<uint64_t> place(size_t u, uint64_t stored_size, LaidOutItem& it, const WriteUnit& unit) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return failed_ || next_ == u; });
    if (failed_) return std::nullopt;
    const uint64_t at = cursor_;
    if (unit.begin == 0) it.offset = at;
    for (auto& b : stored_of(it, unit)) b.offset += at - it.offset;
    cursor_ = align_up(at + stored_size, kIoAlignment);
    end_ = at + stored_size;
    ++next_;
    cv_.notify_all();
    return at;
  }
  void fail() {
    std::lock_guard lock(mutex_);
    failed_ = true;
    cv_.notify_all();
  }
  uint64_t end() const { return end_; }

  // The stored-block entries of a unit (whole blocks of its item).
  static std::span<StoredBlock> stored_of(LaidOutItem& it, const WriteUnit& unit) {
    const uint64_t bs = it.stored_block_size;
    const uint64_t first = unit.begin / bs, last = (unit.end + bs - 1) / bs;
    return std::span<StoredBlock>(it.stored.data() + first, last - first);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  size_t next_ = 0;
  uint64_t cursor_ = 0;
  uint64_t end_ = 0;
  bool failed_ = false;
};

// Copies elements [e0, e1) (row-major) of `src` into `dst` as `dtype`.
void stage_elements(const Tensor& src, uint64_t e0, uint64_t e1, DType dtype, std::byte* dst) {
  const uint64_t elem = dtype_size(dtype);
  for (const auto& box : fs_detail::decompose_linear_range(src.sizes(), e0, e1)) {
    Tensor view = src;
    for (size_t d = 0; d < box.offsets.size(); ++d) {
      view = view.narrow(static_cast<int64_t>(d), box.offsets[d], box.lengths[d]);
    }
    Tensor out = Tensor::from_blob(dst + (box.linear_begin - e0) * elem, box.lengths, dtype);
    out.copy_from(view);
  }
}

// Per-thread state: a staging buffer and a streaming hash for blocks that
// straddle staging pieces.
class UnitWriter {
 public:
  UnitWriter(FileSystem& fs, WritableFile& file, uint64_t block_size, size_t staging_bytes, bool need_staging)
      : fs_(fs), file_(file), block_size_(block_size) {
    if (need_staging) staging_ = AlignedBuffer(std::max<size_t>(align_up(staging_bytes, kIoAlignment), kIoAlignment));
    state_ = XXH3_createState();
    if (!state_) throw Error(ErrorCode::kInternal, "cannot allocate an XXH3 state");
  }
  // A buffered_ file left open closes silently: the data file's own sync
  // and close report what matters.
  ~UnitWriter() { XXH3_freeState(state_); }
  UnitWriter(const UnitWriter&) = delete;
  UnitWriter& operator=(const UnitWriter&) = delete;

  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t calls() const { return calls_; }

  // Compressed saves: checksums and encodes every block of the unit into one
  // buffer, takes the unit's place in the file, writes it. Returns false
  // when the save is failing elsewhere.
  bool write_encoded(LaidOutItem& it, const WriteUnit& unit, size_t u, FilePlacer& placer, int level) {
    if (!encoder_) encoder_ = std::make_unique<fs_detail::BlockEncoder>(fs_detail::CodecOptions{.zstd_level = level});
    const uint64_t bs = block_size_;
    const uint64_t blocks = (unit.end - unit.begin + bs - 1) / bs;
    const size_t need =
        static_cast<size_t>(align_up(blocks * fs_detail::max_encoded_size(bs, it.width), kIoAlignment));
    if (out_.capacity() < need) out_ = AlignedBuffer(need);
    std::span<StoredBlock> stored = FilePlacer::stored_of(it, unit);
    uint64_t size = 0;
    for (uint64_t b = 0; b < blocks; ++b) {
      const uint64_t at = unit.begin + b * bs;
      const uint64_t n = std::min(bs, unit.end - at);
      const std::byte* raw = nullptr;
      if (it.contiguous) {
        raw = it.contiguous + at;
      } else {
        if (block_.size() < n) block_.resize(bs);
        const uint64_t elem = dtype_size(it.item->dtype);
        stage_elements(it.tensor, at / elem, (at + n) / elem, it.item->dtype, block_.data());
        raw = block_.data();
      }
      it.checksums[at / bs] = fs_detail::hash64(raw, static_cast<size_t>(n));
      std::byte* dst = out_.data() + size;
      size_t len = encoder_->encode(raw, static_cast<size_t>(n), it.width, dst);
      StoredBlock& sb = stored[b];
      sb.encoding = len ? static_cast<uint8_t>(fs_detail::BlockEncoding::kGrouped) : 0;
      if (!len) {
        std::memcpy(dst, raw, static_cast<size_t>(n));
        len = static_cast<size_t>(n);
      }
      sb.offset = size;  // within the unit until placed
      sb.length = len;
      size += len;
    }
    const std::optional<uint64_t> file_at = placer.place(u, size, it, unit);
    if (!file_at) return false;
    if (file_.direct()) {
      std::memset(out_.data() + size, 0, static_cast<size_t>(align_up(size, kIoAlignment) - size));
      put(out_.data(), align_up(size, kIoAlignment), *file_at);
    } else {
      put(out_.data(), size, *file_at);
    }
    return true;
  }

  void write(LaidOutItem& it, const WriteUnit& unit) {
    const bool direct = file_.direct();
    const uint64_t file_at = it.offset + unit.begin;
    const uint64_t length = unit.end - unit.begin;
    if (it.contiguous) {
      const std::byte* src = it.contiguous + unit.begin;
      hash_range(it, unit.begin, src, length);
      if (!direct) {
        put(src, length, file_at);
        return;
      }
      // Straight from memory when the memory is page-aligned too; only the
      // last partial page goes through staging (zero padded).
      if (reinterpret_cast<uintptr_t>(src) % kIoAlignment == 0 && file_at % kIoAlignment == 0) {
        const uint64_t body = length / kIoAlignment * kIoAlignment;
        if (body > 0) put(src, body, file_at);
        if (body < length) put_padded(src + body, length - body, file_at + body);
        return;
      }
      for (uint64_t done = 0; done < length;) {
        const uint64_t n = std::min<uint64_t>(staging_.capacity(), length - done);
        put_padded(src + done, n, file_at + done);
        done += n;
      }
      return;
    }
    // Strided or converted: gather pieces of whole elements into staging.
    const uint64_t elem = dtype_size(it.item->dtype);
    const uint64_t piece_cap = staging_.capacity() / kIoAlignment * kIoAlignment;
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min<uint64_t>(piece_cap, length - done);
      const uint64_t at = unit.begin + done;
      stage_elements(it.tensor, at / elem, (at + n) / elem, it.item->dtype, staging_.data());
      hash_range(it, at, staging_.data(), n);
      if (direct) {
        pad(n);
        put(staging_.data(), align_up(n, kIoAlignment), file_at + done);
      } else {
        put(staging_.data(), n, file_at + done);
      }
      done += n;
    }
  }

 private:
  void put(const void* data, uint64_t length, uint64_t offset) {
    if (!file_.direct()) {
      file_.write_all(data, static_cast<size_t>(length), offset);
      bytes_written_ += length;
      ++calls_;
      return;
    }
    // A direct write cut short inside a page cannot go on at that unaligned
    // offset (EINVAL): the rest goes through a buffered descriptor of the
    // same file (disjoint ranges; the final sync covers both).
    const auto* p = static_cast<const std::byte*>(data);
    while (length > 0) {
      const size_t n = file_.write(p, static_cast<size_t>(length), offset);
      ++calls_;
      if (n == 0) {
        throw Error(ErrorCode::kIo, "pwrite '" + file_.path() + "' at offset " + std::to_string(offset) + " length " +
                                        std::to_string(length) + " made no progress");
      }
      bytes_written_ += n;
      p += n;
      offset += n;
      length -= n;
      if (length > 0 && n % kIoAlignment != 0) {
        if (!buffered_) buffered_ = fs_.open_write(file_.path(), {.create = false, .truncate = false});
        buffered_->write_all(p, static_cast<size_t>(length), offset);
        bytes_written_ += length;
        ++calls_;
        return;
      }
    }
  }
  void pad(uint64_t n) { std::memset(staging_.data() + n, 0, static_cast<size_t>(align_up(n, kIoAlignment) - n)); }
  void put_padded(const std::byte* src, uint64_t n, uint64_t offset) {
    std::memcpy(staging_.data(), src, static_cast<size_t>(n));
    pad(n);
    put(staging_.data(), align_up(n, kIoAlignment), offset);
  }
  // Checksums item bytes [at, at + n) held at `data`; a block that continues
  // past this piece is carried in the streaming state to the next one.
  void hash_range(LaidOutItem& it, uint64_t at, const std::byte* data, uint64_t n) {
    const uint64_t end = at + n;
    while (at < end) {
      const uint64_t block = at / block_size_;
      const uint64_t block_begin = block * block_size_;
      const uint64_t block_end = std::min(block_begin + block_size_, it.length);
      const uint64_t take = std::min(block_end, end) - at;
      if (at == block_begin && take == block_end - block_begin) {
        it.checksums[block] = fs_detail::hash64(data, static_cast<size_t>(take));
      } else {
        if (at == block_begin) XXH3_64bits_reset(state_);
        XXH3_64bits_update(state_, data, static_cast<size_t>(take));
        if (at + take == block_end) it.checksums[block] = XXH3_64bits_digest(state_);
      }
      data += take;
      at += take;
    }
  }

  FileSystem& fs_;
  WritableFile& file_;
  uint64_t block_size_;
  AlignedBuffer staging_;
  XXH3_state_t* state_ = nullptr;
  std::unique_ptr<WritableFile> buffered_;  // opened only after a direct write came back mid-page
  std::unique_ptr<fs_detail::BlockEncoder> encoder_;  // compressed saves
  AlignedBuffer out_;                                 // a unit's encoded blocks
  std::vector<std::byte> block_;                      // one gathered block of a strided item
  uint64_t bytes_written_ = 0;
  uint64_t calls_ = 0;
};

// The items of a plan, resolved and placed in the data file.
struct Layout {
  std::vector<LaidOutItem> items;
  uint64_t end = 0;           // the file's length
  bool need_staging = false;  // some item is gathered through a staging buffer
};

// XXH3-128 of a tensor item's bytes as stored (gathered in pieces when strided).
std::array<uint64_t, 2> content_hash_of(const LaidOutItem& it) {
  XXH128_hash_t h;
  if (it.contiguous || it.length == 0) {
    h = XXH3_128bits(it.contiguous, static_cast<size_t>(it.length));
  } else {
    XXH3_state_t* state = XXH3_createState();
    if (!state) throw Error(ErrorCode::kInternal, "cannot allocate an XXH3 state");
    XXH3_128bits_reset(state);
    const uint64_t elem = dtype_size(it.item->dtype);
    const uint64_t piece = std::max<uint64_t>(1, (4u << 20) / elem) * elem;
    std::vector<std::byte> buf(static_cast<size_t>(std::min(piece, it.length)));
    for (uint64_t at = 0; at < it.length; at += piece) {
      const uint64_t n = std::min(piece, it.length - at);
      stage_elements(it.tensor, at / elem, (at + n) / elem, it.item->dtype, buf.data());
      XXH3_128bits_update(state, buf.data(), static_cast<size_t>(n));
    }
    h = XXH3_128bits_digest(state);
    XXH3_freeState(state);
  }
  return {h.low64, h.high64};
}

// The base's chunk with the same key, box and dtype whose content hash is `hash`.
const StorageLocation* unchanged_in_base(const Metadata& base, const WriteItem& item,
                                         const std::array<uint64_t, 2>& hash) {
  auto t = base.tensors.find(item.fqn);
  if (t == base.tensors.end() || t->second.dtype != item.dtype || t->second.global_shape != item.global_shape) {
    return nullptr;
  }
  for (const ChunkMeta& c : t->second.chunks) {
    if (c.offsets == item.offsets && c.sizes == item.sizes && c.location.content_hash == hash) return &c.location;
  }
  return nullptr;
}

// Resolves every item and lays it out (offsets depend only on lengths).
Layout lay_out_items(const SavePlan& plan, SavePlanner& planner, uint64_t block_size, bool direct, bool compress,
                     const FileSystemWriterOptions& options) {
  const bool hashes = options.content_hashes || options.base;
  Layout layout;
  layout.items.resize(plan.items.size());
  layout.need_staging = direct;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const WriteItem& item = plan.items[i];
    LaidOutItem& it = layout.items[i];
    it.item = &item;
    if (item.type == WriteItemType::kTensor) {
      it.tensor = planner.resolve_tensor(item);
      if (it.tensor.sizes() != item.sizes) {
        throw Error(ErrorCode::kInternal, "planner resolved '" + item.fqn + "' chunk at " +
                                              shape_to_string(item.offsets) + " to a tensor of shape " +
                                              shape_to_string(it.tensor.sizes()) + ", the plan says " +
                                              shape_to_string(item.sizes));
      }
      it.length = static_cast<uint64_t>(shape_numel(item.sizes)) * dtype_size(item.dtype);
      // A non-contiguous view (a transposed or narrowed tensor) or another
      // dtype is gathered piece by piece into staging: never a whole copy.
      if (it.length > 0 && it.tensor.is_contiguous() && it.tensor.dtype() == item.dtype) {
        it.contiguous = static_cast<const std::byte*>(it.tensor.data_ptr());
      } else if (it.length > 0) {
        layout.need_staging = true;
      }
      if (hashes && it.length > 0) {
        it.content_hash = content_hash_of(it);
        if (options.base) it.reference = unchanged_in_base(*options.base, item, *it.content_hash);
        if (it.reference) continue;  // not written
      }
    } else {
      it.value = planner.resolve_value(item);
      it.length = it.value.size();
      it.contiguous = it.value.data();
    }
    it.offset = align_up(layout.end, kIoAlignment);
    if (it.length > 0) layout.end = it.offset + it.length;
    it.checksums.assign(fs_detail::block_count(it.length, block_size), 0);
    if (compress) {
      // Offsets are taken as units are placed (FilePlacer).
      it.stored.assign(it.checksums.size(), StoredBlock{});
      it.stored_block_size = block_size;
      it.width = item.type == WriteItemType::kTensor ? fs_detail::group_width(item.dtype) : 1;
    }
  }
  return layout;
}

// Units of whole blocks. Cutting inside an item needs block boundaries that
// are page-aligned (direct I/O offsets) and element-aligned (staging whole
// elements); otherwise the item is one unit.
std::vector<WriteUnit> cut_units(const std::vector<LaidOutItem>& items, uint64_t block, uint64_t write_unit_bytes) {
  const bool cuttable = block % kIoAlignment == 0;
  const uint64_t unit_bytes = std::max<uint64_t>(block, write_unit_bytes / block * block);
  std::vector<WriteUnit> units;
  for (size_t i = 0; i < items.size(); ++i) {
    const uint64_t length = items[i].length;
    if (length == 0 || items[i].reference) continue;
    if (!cuttable) {
      units.push_back({i, 0, length});
      continue;
    }
    for (uint64_t at = 0; at < length; at += unit_bytes) units.push_back({i, at, std::min(length, at + unit_bytes)});
  }
  return units;
}

// Writes and checksums every unit: the calling thread and up to
// io_threads - 1 pool threads each take units in file order, so the disk
// sees a few nearby sequential streams. Stops at the first failure and
// rethrows it.
void write_units(FileSystem& fs, WritableFile& file, Layout& layout, const std::vector<WriteUnit>& units,
                 const FileSystemWriterOptions& options, StorageIoStats& stats) {
  std::optional<FilePlacer> placer;
  if (options.compress) placer.emplace();
  const size_t threads = std::max<size_t>(1, std::min(options.io_threads, units.size()));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  std::atomic<uint64_t> written{0}, calls{0};
  auto worker = [&] {
    try {
      UnitWriter writer(fs, file, options.block_size, options.staging_buffer_bytes, layout.need_staging);
      while (!failed.load(std::memory_order_relaxed)) {
        const size_t u = next.fetch_add(1);
        if (u >= units.size()) break;
        if (!placer) {
          writer.write(layout.items[units[u].item], units[u]);
        } else if (!writer.write_encoded(layout.items[units[u].item], units[u], u, *placer, options.compress_level)) {
          break;
        }
      }
      written += writer.bytes_written();
      calls += writer.calls();
    } catch (...) {
      failed = true;
      if (placer) placer->fail();
      std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  if (threads == 1) {
    worker();
  } else {
    ThreadPool pool(threads - 1);
    std::vector<std::future<void>> helpers;
    helpers.reserve(threads - 1);
    for (size_t t = 1; t < threads; ++t) helpers.push_back(pool.submit(worker));
    worker();
    for (auto& h : helpers) h.wait();  // the worker catches its own failures
  }
  if (first_error) std::rethrow_exception(first_error);
  if (placer) layout.end = placer->end();
  stats.bytes_written = written;
  stats.io_calls = calls;
}

// What the coordinator records for each item.
std::vector<WriteResult> make_results(Layout& layout, const std::string& file, const std::string& base_name) {
  std::vector<WriteResult> results;
  results.reserve(layout.items.size());
  for (LaidOutItem& it : layout.items) {
    const WriteItem& item = *it.item;
    WriteResult r;
    r.fqn = item.fqn;
    r.type = item.type;
    if (item.type == WriteItemType::kTensor) {
      r.offsets = item.offsets;
      r.sizes = item.sizes;
    }
    if (it.reference) {
      // Where the bytes physically are: the base's own file, or the
      // checkpoint the base refers to (references never chain).
      r.location = *it.reference;
      if (!referenced_checkpoint(r.location.file)) r.location.file = "../" + base_name + "/" + r.location.file;
    } else if (it.length > 0) {
      r.location.file = file;
      r.location.byte_offset = it.offset;
      r.location.byte_length = it.length;
      r.location.block_checksums = std::move(it.checksums);
      // A table that only restates the raw layout is left out.
      bool plain = true;
      for (size_t b = 0; b < it.stored.size() && plain; ++b) {
        plain = it.stored[b].encoding == 0 && it.stored[b].offset == b * it.stored_block_size;
      }
      if (!plain) r.location.stored_blocks = std::move(it.stored);
      r.location.content_hash = it.content_hash;
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace

std::vector<WriteResult> FileSystemWriter::write_data(const SavePlan& plan, SavePlanner& planner) {
  stats_ = {};
  if (plan.items.empty()) return {};
  const std::string file = data_file_;
  // Laid out first (staging buffers are sized for direct I/O whether or not
  // the file system grants it): an incremental save whose items are all
  // unchanged writes no file.
  Layout layout = lay_out_items(plan, planner, options_.block_size, options_.direct_io, options_.compress, options_);
  const std::vector<WriteUnit> units = cut_units(layout.items, options_.block_size, options_.write_unit_bytes);
  const bool all_referenced = std::all_of(layout.items.begin(), layout.items.end(), [](const LaidOutItem& it) {
    return it.reference || it.length == 0;
  });
  if (units.empty() && all_referenced && std::any_of(layout.items.begin(), layout.items.end(),
                                                     [](const LaidOutItem& it) { return it.reference; })) {
    return make_results(layout, file, options_.base_name);
  }
  wrote_data_file_ = true;
  std::unique_ptr<WritableFile> out = fs_->open_write(join_path(staging_, file), {.try_direct = options_.direct_io});
  const bool direct = out->direct();
  stats_.direct = direct;
  stats_.buffered_fallback = options_.direct_io && !direct;
  write_units(*fs_, *out, layout, units, options_, stats_);
  // Direct writes rounded the last item up to a whole page: cut the file back.
  if (direct && layout.end % kIoAlignment != 0) out->truncate(layout.end);
  out->sync();
  out->close();
  return make_results(layout, file, options_.base_name);
}

void FileSystemWriter::write_metadata_file(const Metadata& metadata) {
  std::vector<std::byte> bytes = encode_metadata(metadata);
  if (object_commit_) {
    fs_detail::commit_metadata_object(*fs_, path_, bytes, exclusive_commit_);
    fs_detail::remove_unreferenced_data_files(*fs_, path_, metadata);
    return;
  }
  const std::string tmp = join_path(staging_, kTempMetadataName);
  {
    std::unique_ptr<WritableFile> f = fs_->open_write(tmp);
    f->write_all(bytes.data(), bytes.size(), 0);
    f->sync();
    f->close();
  }
  fs_->rename(tmp, join_path(staging_, std::string(kMetadataFileName)));
  fs_->fsync_dir(staging_);
}

void FileSystemWriter::finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) {
  // Chunk lookup by offsets, built per tensor only when needed.
  std::map<std::string, std::map<Shape, size_t>> chunk_index;
  for (const auto& rank_results : results) {
    for (const WriteResult& r : rank_results) {
      if (r.type == WriteItemType::kValue) {
        auto it = metadata.values.find(r.fqn);
        if (it == metadata.values.end()) {
          throw Error(ErrorCode::kInternal, "a rank wrote value '" + r.fqn + "', which the metadata does not list");
        }
        it->second.location = r.location;
        continue;
      }
      auto it = metadata.tensors.find(r.fqn);
      if (it == metadata.tensors.end()) {
        throw Error(ErrorCode::kInternal, "a rank wrote tensor '" + r.fqn + "', which the metadata does not list");
      }
      TensorMeta& t = it->second;
      auto [idx_it, fresh] = chunk_index.try_emplace(r.fqn);
      auto& index = idx_it->second;
      if (fresh) {
        for (size_t i = 0; i < t.chunks.size(); ++i) index.emplace(t.chunks[i].offsets, i);
      }
      auto c = index.find(r.offsets);
      if (c == index.end()) {
        index.emplace(r.offsets, t.chunks.size());
        t.chunks.push_back(ChunkMeta{r.offsets, r.sizes, r.location});
      } else {
        ChunkMeta& chunk = t.chunks[c->second];
        if (chunk.sizes.size() == r.sizes.size() && chunk.sizes != r.sizes) {
          throw Error(ErrorCode::kInternal, "tensor '" + r.fqn + "' chunk at " + shape_to_string(r.offsets) +
                                                " was written with sizes " + shape_to_string(r.sizes) +
                                                ", the metadata says " + shape_to_string(chunk.sizes));
        }
        chunk.sizes = r.sizes;
        chunk.location = r.location;
      }
    }
  }
  for (const auto& [key, t] : metadata.tensors) {
    for (const auto& c : t.chunks) {
      if (c.location.file.empty() && shape_numel(c.sizes) > 0) {
        throw Error(ErrorCode::kInternal,
                    "no rank wrote chunk " + shape_to_string(c.offsets) + " of tensor '" + key + "'");
      }
    }
  }
  metadata.format = std::string(kFsFormatName);
  // Version 1 unless some block is stored encoded: a save without
  // compression stays readable by every dcpp.
  metadata.format_version = 1;
  auto encoded = [](const StorageLocation& l) {
    return !l.stored_blocks.empty() || l.content_hash || referenced_checkpoint(l.file);
  };
  for (const auto& [key, t] : metadata.tensors) {
    for (const auto& c : t.chunks) {
      if (encoded(c.location)) metadata.format_version = 2;
    }
  }
  for (const auto& [key, v] : metadata.values) {
    if (encoded(v.location)) metadata.format_version = 2;
  }
  if (metadata.dcpp_version.empty()) metadata.dcpp_version = DCPP_VERSION;
  metadata.world_size = world_size_;
  metadata.block_size = options_.block_size;

  write_metadata_file(metadata);
  commit();
}

void FileSystemWriter::commit() {
  if (object_commit_) return;  // the metadata object was the commit
  // Checked again: the path may have changed since prepare().
  CheckpointState state = checkpoint_state(*fs_, path_);
  check_target_replaceable(state);
  const std::string parent = parent_of(path_);
  std::string replaced;  // where the previous checkpoint ends up, to be removed
  if (state == CheckpointState::kMissing) {
    fs_->rename(staging_, path_);
  } else if (fs_->rename_exchange(staging_, path_)) {
    replaced = staging_;  // the old checkpoint now sits at the staging name
  } else {
    // No RENAME_EXCHANGE on this file system: move the old one aside first.
    // A crash between the two renames leaves no checkpoint at the path, but
    // the old one intact beside it under the ".dcpp-old" name, which loads
    // read and the next save restores (resolve_checkpoint_dir).
    replaced = set_aside_path(path_);
    fs_->remove_all(replaced);
    fs_->rename(path_, replaced);
    fs_->rename(staging_, path_);
  }
  // The new checkpoint is live once this returns: the save has succeeded.
  fs_->fsync_dir(parent);
  if (replaced.empty()) return;
  // Removing the previous checkpoint is housekeeping: if it fails, this save
  // still stands, and the next save (or CheckpointManager::cleanup) removes it.
  try {
    fs_->remove_all(replaced);
    fs_->fsync_dir(parent);
  } catch (const Error&) {
  }
}

void FileSystemWriter::abort() noexcept {
  try {
    if (object_commit_) {
      // Each rank removes its own object; the checkpoint's stay.
      if (wrote_data_file_) fs_->remove(join_path(staging_, data_file_));
    } else if (is_coordinator_) {
      fs_->remove_all(staging_);
    } else if (wrote_data_file_) {
      fs_->remove(join_path(staging_, data_file_));
    }
  } catch (...) {
    // abort runs after a failure; a second error must not hide the first.
  }
}

}  // namespace dcpp
