// FileSystemReader and BlockReader: block-verified partial reads.
//
// A read item wants a box of a saved chunk. The box's bytes inside the
// chunk form row-major runs; the checksum blocks those runs touch are read
// (consecutive ones in one pread), each verified before anything is copied,
// and the box is copied out through a strided view over the read bytes.
// Blocks the box does not touch are never read.
#include <exception>
#include <future>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io_thread_pool.h"
#include "storage/fs/fs_common.h"

namespace dcpp {
namespace {

using fs_detail::block_count;
using fs_detail::hash64;
using fs_detail::hex64;
using fs_detail::join_path;

struct BlockRange {
  uint64_t first;
  uint64_t last;  // inclusive
};

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

BlockReader::BlockReader(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank)
    : fs_(fs ? std::move(fs) : default_file_system()),
      directory_(std::move(directory)),
      block_size_(block_size),
      rank_(rank) {
  if (block_size_ == 0) throw Error(ErrorCode::kInvalidArgument, "BlockReader: block size 0");
}

BlockReader::~BlockReader() {
  for (auto& [name, handle] : files_) {
    try {
      fs_->close(handle);
    } catch (...) {
      // Read-only descriptors: nothing to lose on a failed close.
    }
  }
}

const FileHandle& BlockReader::file(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = files_.find(name);
  if (it != files_.end()) return it->second;
  const std::string path = join_path(directory_, name);
  FileHandle handle;
  try {
    handle = fs_->open(path, OpenFlags::read_only());
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    throw Error(ErrorCode::kCorrupt, "data file " + quoted(path) + " named by the metadata is missing (rank " +
                                         std::to_string(rank_) + ")");
  }
  return files_.emplace(name, std::move(handle)).first->second;
}

void BlockReader::read_blocks(const std::string& key, const StorageLocation& loc, uint64_t first, uint64_t last,
                              std::byte* dst) {
  const uint64_t begin = first * block_size_;
  const uint64_t end = std::min((last + 1) * block_size_, loc.byte_length);
  const uint64_t length = end - begin;
  const FileHandle& handle = file(loc.file);
  size_t got = fs_->read_full(handle, dst, static_cast<size_t>(length), loc.byte_offset + begin);
  if (got < length) {
    throw Error(ErrorCode::kCorrupt,
                "data file " + quoted(join_path(directory_, loc.file)) + " is shorter than the metadata says: key " +
                    quoted(key) + " needs bytes up to offset " + std::to_string(loc.byte_offset + end) +
                    " but the file ends at byte offset " + std::to_string(loc.byte_offset + begin + got) +
                    " (rank " + std::to_string(rank_) + ")");
  }
  for (uint64_t b = first; b <= last; ++b) {
    const uint64_t at = b * block_size_;
    const uint64_t n = std::min(block_size_, loc.byte_length - at);
    const uint64_t sum = hash64(dst + (at - begin), static_cast<size_t>(n));
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

namespace {

void check_location(const std::string& key, const StorageLocation& loc, uint64_t block_size) {
  if (loc.byte_length > 0) validate_relative_file_name(key, loc.file);
  if (loc.block_checksums.size() != block_count(loc.byte_length, block_size)) {
    throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + " has " + std::to_string(loc.block_checksums.size()) +
                                         " block checksums for " + std::to_string(loc.byte_length) +
                                         " bytes in blocks of " + std::to_string(block_size));
  }
}

}  // namespace

void BlockReader::read_box(const std::string& key, const StorageLocation& loc, DType dtype, const Shape& chunk_sizes,
                           const Shape& box_offsets, const Shape& box_lengths, const Tensor& dest) {
  const size_t ndim = chunk_sizes.size();
  if (box_offsets.size() != ndim || box_lengths.size() != ndim) {
    throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": box " + shape_to_string(box_offsets) +
                                                 " + " + shape_to_string(box_lengths) +
                                                 " does not match the chunk's rank " + std::to_string(ndim));
  }
  for (size_t d = 0; d < ndim; ++d) {
    if (box_offsets[d] < 0 || box_lengths[d] < 0 || box_offsets[d] > chunk_sizes[d] ||
        box_lengths[d] > chunk_sizes[d] - box_offsets[d]) {
      throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": box at " + shape_to_string(box_offsets) +
                                                   " of size " + shape_to_string(box_lengths) +
                                                   " lies outside the saved chunk of size " +
                                                   shape_to_string(chunk_sizes));
    }
  }
  if (dest.sizes() != box_lengths) {
    throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": destination shape " +
                                                 shape_to_string(dest.sizes()) + " differs from the box size " +
                                                 shape_to_string(box_lengths));
  }
  const uint64_t elem = dtype_size(dtype);
  uint64_t chunk_numel = 1;
  for (int64_t s : chunk_sizes) {
    if (__builtin_mul_overflow(chunk_numel, static_cast<uint64_t>(s), &chunk_numel)) {
      throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + ": chunk element count overflows");
    }
  }
  if (loc.byte_length != chunk_numel * elem) {
    throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + ": chunk of size " + shape_to_string(chunk_sizes) +
                                         " should hold " + std::to_string(chunk_numel * elem) + " bytes, its location " +
                                         "says " + std::to_string(loc.byte_length));
  }
  check_location(key, loc, block_size_);
  if (shape_numel(box_lengths) == 0) return;

  // Row-major element strides of the saved chunk.
  Shape strides(ndim, 1);
  for (size_t d = ndim; d-- > 1;) strides[d - 1] = strides[d] * chunk_sizes[d];

  // Trailing dimensions the box covers whole merge into each run; `split` is
  // the innermost dimension the box only partly covers (runs iterate over
  // the box indices of the dimensions before it).
  size_t split = 0;
  uint64_t run_elems = 1;
  if (ndim > 0) {
    split = ndim - 1;
    while (split > 0 && box_offsets[split] == 0 && box_lengths[split] == chunk_sizes[split]) --split;
    run_elems = static_cast<uint64_t>(box_lengths[split]) * static_cast<uint64_t>(strides[split]);
  }
  const uint64_t run_bytes = run_elems * elem;
  uint64_t base = 0;  // element index of the box's first element in the chunk
  for (size_t d = 0; d < ndim; ++d) base += static_cast<uint64_t>(box_offsets[d]) * strides[d];

  // Touched blocks, as sorted ranges: runs are visited in increasing byte
  // order, so each run either extends the last range or starts a new one.
  std::vector<BlockRange> ranges;
  Shape index(split, 0);
  uint64_t nruns = 1;
  for (size_t d = 0; d < split; ++d) nruns *= static_cast<uint64_t>(box_lengths[d]);
  for (uint64_t run = 0; run < nruns; ++run) {
    uint64_t start = base;
    for (size_t d = 0; d < split; ++d) start += static_cast<uint64_t>(index[d]) * strides[d];
    const uint64_t b0 = start * elem / block_size_;
    const uint64_t b1 = (start * elem + run_bytes - 1) / block_size_;
    if (!ranges.empty() && b0 <= ranges.back().last + 1) {
      ranges.back().last = std::max(ranges.back().last, b1);
    } else {
      ranges.push_back({b0, b1});
    }
    for (size_t d = split; d-- > 0;) {
      if (++index[d] < box_lengths[d]) break;
      index[d] = 0;
    }
  }

  // One buffer spanning the first to the last touched block; only touched
  // blocks are read into it (untouched pages of a large allocation are never
  // faulted in), and the strided view below only reads touched bytes.
  const uint64_t span_begin = ranges.front().first * block_size_;
  const uint64_t span_end = std::min((ranges.back().last + 1) * block_size_, loc.byte_length);
  AlignedBuffer buffer(static_cast<size_t>(span_end - span_begin));
  for (const BlockRange& r : ranges) {
    read_blocks(key, loc, r.first, r.last, buffer.data() + (r.first * block_size_ - span_begin));
  }
  std::byte* origin = buffer.data() + (base * elem - span_begin);
  Tensor view = Tensor::from_blob(origin, box_lengths, dtype, strides);
  Tensor(dest).copy_from(view);
}

Bytes BlockReader::read_bytes(const std::string& key, const StorageLocation& loc) {
  check_location(key, loc, block_size_);
  Bytes out(loc.byte_length);
  if (loc.byte_length == 0) return out;
  read_blocks(key, loc, 0, loc.block_checksums.size() - 1, out.data());
  return out;
}

Metadata read_fs_metadata(FileSystem& fs, const std::string& path) {
  FileType type = fs.file_type(path);
  if (type == FileType::kNone) {
    throw Error(ErrorCode::kNotFound, "no checkpoint at " + quoted(path) + ": the directory does not exist");
  }
  if (type != FileType::kDirectory) {
    throw Error(ErrorCode::kNotFound, "no checkpoint at " + quoted(path) + ": it is not a directory");
  }
  const std::string meta_path = join_path(path, std::string(kMetadataFileName));
  if (fs.file_type(meta_path) == FileType::kNone) {
    throw Error(ErrorCode::kNotFound, "checkpoint " + quoted(path) + " has no " + std::string(kMetadataFileName) +
                                          ": the checkpoint is incomplete (a save did not finish) or it is not a "
                                          "dcpp checkpoint");
  }
  ScopedFile f(fs, fs.open(meta_path, OpenFlags::read_only()));
  const uint64_t size = fs.file_size(meta_path);
  std::vector<std::byte> bytes(static_cast<size_t>(size));
  size_t got = fs.read_full(f.get(), bytes.data(), bytes.size(), 0);
  if (got != size) {
    throw Error(ErrorCode::kCorrupt, "metadata file " + quoted(meta_path) + " ended at byte offset " +
                                         std::to_string(got) + " while reading its " + std::to_string(size) +
                                         " bytes");
  }
  f.close();
  return decode_metadata(bytes.data(), bytes.size(), meta_path);
}

FileSystemReader::FileSystemReader(std::string path, FileSystemReaderOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  fs_ = options_.filesystem ? options_.filesystem : default_file_system();
}

FileSystemReader::~FileSystemReader() = default;

void FileSystemReader::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  blocks_.reset();
}

Metadata FileSystemReader::read_metadata() {
  metadata_ = read_fs_metadata(*fs_, path_);
  blocks_.reset();
  return *metadata_;
}

void FileSystemReader::read_data(const LoadPlan& plan, LoadPlanner& planner) {
  if (!metadata_) read_metadata();
  const Metadata& md = *metadata_;
  if (!blocks_) blocks_ = std::make_unique<BlockReader>(fs_, path_, md.block_size, rank_);

  struct TensorRead {
    const ReadItem* item;
    const TensorMeta* tensor;
    const ChunkMeta* chunk;
    Tensor dest;
  };
  std::vector<TensorRead> reads;
  std::vector<const ReadItem*> values;
  for (const ReadItem& item : plan.items) {
    if (item.type == ReadItemType::kValue) {
      if (!md.values.count(item.fqn)) {
        throw Error(ErrorCode::kInvalidArgument, "read plan asks for value " + quoted(item.fqn) +
                                                     ", which checkpoint " + quoted(path_) + " does not hold");
      }
      values.push_back(&item);
      continue;
    }
    auto it = md.tensors.find(item.fqn);
    if (it == md.tensors.end()) {
      throw Error(ErrorCode::kInvalidArgument, "read plan asks for tensor " + quoted(item.fqn) +
                                                   ", which checkpoint " + quoted(path_) + " does not hold");
    }
    if (item.chunk_index >= it->second.chunks.size()) {
      throw Error(ErrorCode::kInvalidArgument, "read plan asks for chunk " + std::to_string(item.chunk_index) +
                                                   " of " + quoted(item.fqn) + ", which has " +
                                                   std::to_string(it->second.chunks.size()));
    }
    // Destinations are resolved up front, on this thread: planners are not thread-safe.
    reads.push_back({&item, &it->second, &it->second.chunks[item.chunk_index], planner.resolve_tensor(item)});
  }

  auto do_read = [this](const TensorRead& r) {
    blocks_->read_box(r.item->fqn, r.chunk->location, r.tensor->dtype, r.chunk->sizes, r.item->storage_offsets,
                      r.item->lengths, r.dest);
  };
  if (options_.io_threads <= 1 || reads.size() <= 1) {
    for (const auto& r : reads) do_read(r);
  } else {
    ThreadPool pool(std::min(options_.io_threads, reads.size()));
    std::vector<std::future<void>> futures;
    futures.reserve(reads.size());
    for (const auto& r : reads) futures.push_back(pool.submit([&do_read, &r] { do_read(r); }));
    // Wait for every read before reporting: no task may outlive the buffers it writes.
    std::exception_ptr first;
    for (auto& f : futures) {
      try {
        f.get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

  for (const ReadItem* item : values) {
    Bytes bytes = blocks_->read_bytes(item->fqn, md.values.at(item->fqn).location);
    planner.load_value(*item, bytes);
  }
}

}  // namespace dcpp
