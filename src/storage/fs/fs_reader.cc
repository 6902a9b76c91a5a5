// FileSystemReader: block-verified partial reads.
//
// A read item wants a box of a saved chunk. The box's bytes inside the
// chunk form row-major runs; the checksum blocks those runs touch are read
// by the read engine (read_engine.h: coalesced, parallel, direct where the
// file system allows, read once for all ranks given a communicator), each
// verified before anything is copied. Blocks no box touches are never read.
#include <algorithm>
#include <exception>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/s3_file_system.h"
#include "storage/fs/block_reader.h"
#include "storage/fs/fs_common.h"
#include "storage/fs/read_engine.h"

namespace dcpp {
namespace {

using fs_detail::join_path;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

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
  std::unique_ptr<RandomAccessFile> f = fs.open_read(meta_path);
  const uint64_t size = fs.file_size(meta_path);
  std::vector<std::byte> bytes(static_cast<size_t>(size));
  size_t got = f->read_full(bytes.data(), bytes.size(), 0);
  if (got != size) {
    throw Error(ErrorCode::kCorrupt, "metadata file " + quoted(meta_path) + " ended at byte offset " +
                                         std::to_string(got) + " while reading its " + std::to_string(size) +
                                         " bytes");
  }
  return decode_metadata(bytes.data(), bytes.size(), meta_path);
}

FileSystemReader::FileSystemReader(std::string path, FileSystemReaderOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  fs_ = options_.filesystem ? options_.filesystem : file_system_for_path(path_);
}

FileSystemReader::~FileSystemReader() = default;

void FileSystemReader::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  world_size_ = world_size;
  engine_.reset();
}

Metadata FileSystemReader::read_metadata() {
  // A save that crashed mid-swap may have left the checkpoint aside.
  dir_ = resolve_checkpoint_dir(*fs_, path_);
  metadata_ = read_fs_metadata(*fs_, dir_);
  engine_.reset();
  return *metadata_;
}

void FileSystemReader::read_data(const LoadPlan& plan, LoadPlanner& planner) {
  // With a communicator the engine's read is collective: whatever fails
  // here is handed to it, so that the other ranks hear of it, not wait.
  const CommPtr comm = options_.comm ? options_.comm : load_comm_;
  const bool collective = options_.read_once && comm && comm->size() > 1 && comm->size() == world_size_ && comm->rank() == rank_;
  std::exception_ptr failure;
  std::vector<fs_detail::BoxRead> reads;
  std::vector<const ReadItem*> values;
  try {
    if (!metadata_) read_metadata();
    const Metadata& md = *metadata_;
    if (!engine_) engine_ = std::make_unique<fs_detail::ReadEngine>(fs_, dir_, md.block_size, rank_);
    engine_->reset_stats();
    reads.reserve(plan.items.size());
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
      const ChunkMeta& chunk = it->second.chunks[item.chunk_index];
      // Destinations are resolved up front, on this thread: planners are not thread-safe.
      reads.push_back(fs_detail::make_box_read(item.fqn, item.chunk_index, chunk.location, it->second.dtype,
                                               chunk.sizes, item.storage_offsets, item.lengths,
                                               planner.resolve_tensor(item), md.block_size));
    }
  } catch (...) {
    if (!collective) throw;
    failure = std::current_exception();
  }
  if (collective && !engine_) {
    // No metadata: the failure is announced through a throwaway engine.
    engine_ = std::make_unique<fs_detail::ReadEngine>(fs_, dir_.empty() ? path_ : dir_, 1, rank_);
  }

  fs_detail::ReadEngineOptions options;
  options.threads = options_.io_threads;
  options.direct = options_.direct_io;
  options.max_read_bytes = std::max<uint64_t>(options_.max_read_bytes, 1);
  options.round_bytes = std::max<uint64_t>(options_.round_bytes, 1);
  options.share_piece_bytes = std::max<uint64_t>(options_.share_piece_bytes, 1);
  options.comm = collective ? comm : nullptr;
  options.metadata = metadata_ ? &*metadata_ : nullptr;
  engine_->read(reads, options, failure);

  const Metadata& md = *metadata_;
  for (const ReadItem* item : values) {
    Bytes bytes = engine_->read_bytes(item->fqn, md.values.at(item->fqn).location);
    planner.load_value(*item, bytes);
  }
  stats_ = engine_->stats();
}

}  // namespace dcpp
