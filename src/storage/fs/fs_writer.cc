// FileSystemWriter: data files into a staging directory, metadata last,
// then an atomic swap into place (docs/format.md, "Commit protocol").
#include <algorithm>
#include <cstring>
#include <map>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/fs/fs_common.h"

#ifndef DCPP_VERSION
#define DCPP_VERSION "unknown"
#endif

namespace dcpp {
namespace {

using fs_detail::block_checksums;
using fs_detail::join_path;

std::pair<std::string, std::string> split_parent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return {".", p};
  if (slash == 0) return {"/", p.substr(1)};
  return {p.substr(0, slash), p.substr(slash + 1)};
}

std::string parent_of(const std::string& path) { return split_parent(path).first; }

bool is_data_file_name(const std::string& name) {
  // data-<digits>.bin
  if (name.size() < 10 || name.compare(0, 5, "data-") != 0 || name.compare(name.size() - 4, 4, ".bin") != 0) {
    return false;
  }
  return std::all_of(name.begin() + 5, name.end() - 4, [](char c) { return c >= '0' && c <= '9'; });
}

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

FileSystemWriter::FileSystemWriter(std::string path, FileSystemWriterOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  if (path_.empty()) throw Error(ErrorCode::kInvalidArgument, "FileSystemWriter: empty checkpoint path");
  if (options_.block_size == 0) throw Error(ErrorCode::kInvalidArgument, "FileSystemWriter: block_size must be > 0");
  fs_ = options_.filesystem ? options_.filesystem : default_file_system();
  staging_ = staging_path(path_);
}

FileSystemWriter::~FileSystemWriter() = default;

void FileSystemWriter::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  world_size_ = world_size;
  is_coordinator_ = is_coordinator;
  wrote_data_file_ = false;
  prepared_ = false;
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
  check_target_replaceable(checkpoint_state(*fs_, path_));
  fs_->create_directories(parent_of(path_));
  // A staging directory left by a crashed save holds nothing of value: the
  // target still has the last complete checkpoint.
  fs_->remove_all(staging_);
  fs_->mkdir(staging_);
  prepared_ = true;
}

std::vector<WriteResult> FileSystemWriter::write_data(const SavePlan& plan, SavePlanner& planner) {
  std::vector<WriteResult> results;
  if (plan.items.empty()) return results;
  const std::string file = data_file_name(rank_);
  const std::string file_path = join_path(staging_, file);
  OpenFlags flags = OpenFlags::create_write();
  flags.try_direct = options_.direct_io;
  wrote_data_file_ = true;
  ScopedFile out(*fs_, fs_->open(file_path, flags));

  AlignedBuffer staging;
  if (options_.direct_io) {
    staging = AlignedBuffer(std::max<size_t>(align_up(options_.staging_buffer_bytes, kIoAlignment), kIoAlignment));
  }
  static const std::byte kZeros[kIoAlignment] = {};
  uint64_t end = 0;  // bytes of the file written so far (direct: rounded up to kIoAlignment)
  results.reserve(plan.items.size());

  for (const WriteItem& item : plan.items) {
    Tensor tensor;
    Bytes value;
    const std::byte* src = nullptr;
    uint64_t length = 0;
    if (item.type == WriteItemType::kTensor) {
      tensor = planner.resolve_tensor(item);
      if (tensor.sizes() != item.sizes) {
        throw Error(ErrorCode::kInternal, "planner resolved '" + item.fqn + "' chunk at " +
                                              shape_to_string(item.offsets) + " to a tensor of shape " +
                                              shape_to_string(tensor.sizes()) + ", the plan says " +
                                              shape_to_string(item.sizes));
      }
      if (tensor.dtype() != item.dtype) tensor = tensor.to(item.dtype);
      // A non-contiguous view (a transposed or narrowed tensor) is gathered
      // into row-major order first: the format stores chunks row-major.
      if (!tensor.is_contiguous()) tensor = tensor.contiguous();
      length = tensor.nbytes();
      if (length > 0) src = static_cast<const std::byte*>(tensor.data_ptr());
    } else {
      value = planner.resolve_value(item);
      length = value.size();
      src = value.data();
    }

    const uint64_t offset = align_up(end, kIoAlignment);
    if (staging.empty()) {
      if (offset > end && length > 0) fs_->write_all(out.get(), kZeros, offset - end, end);
      if (length > 0) fs_->write_all(out.get(), src, length, offset);
      if (length > 0) end = offset + length;
    } else {
      // Direct I/O: aligned buffer, aligned offset, aligned length; the zero
      // tail of the last piece is exactly the padding before the next item.
      for (uint64_t done = 0; done < length;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(staging.capacity(), length - done));
        std::memcpy(staging.data(), src + done, n);
        size_t padded = static_cast<size_t>(align_up(n, kIoAlignment));
        std::memset(staging.data() + n, 0, padded - n);
        fs_->write_all(out.get(), staging.data(), padded, offset + done);
        done += n;
      }
      if (length > 0) end = offset + length;
    }

    WriteResult r;
    r.fqn = item.fqn;
    r.type = item.type;
    if (item.type == WriteItemType::kTensor) {
      r.offsets = item.offsets;
      r.sizes = item.sizes;
    }
    if (length > 0) {
      r.location.file = file;
      r.location.byte_offset = offset;
      r.location.byte_length = length;
      r.location.block_checksums = block_checksums(src, length, options_.block_size);
    }
    results.push_back(std::move(r));
  }

  // Direct writes rounded the last item up to a whole page: cut the file back.
  if (!staging.empty()) fs_->truncate(out.get(), end);
  fs_->fsync(out.get());
  out.close();
  return results;
}

void FileSystemWriter::write_metadata_file(const Metadata& metadata) {
  std::vector<std::byte> bytes = encode_metadata(metadata);
  const std::string tmp = join_path(staging_, kTempMetadataName);
  {
    ScopedFile f(*fs_, fs_->open(tmp, OpenFlags::create_write()));
    fs_->write_all(f.get(), bytes.data(), bytes.size(), 0);
    fs_->fsync(f.get());
    f.close();
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
  metadata.format_version = kFsFormatVersion;
  if (metadata.dcpp_version.empty()) metadata.dcpp_version = DCPP_VERSION;
  metadata.world_size = world_size_;
  metadata.block_size = options_.block_size;

  write_metadata_file(metadata);
  commit();
}

void FileSystemWriter::commit() {
  // Checked again: the path may have changed since prepare().
  CheckpointState state = checkpoint_state(*fs_, path_);
  check_target_replaceable(state);
  const std::string parent = parent_of(path_);
  if (state == CheckpointState::kMissing) {
    fs_->rename(staging_, path_);
  } else if (fs_->rename_exchange(staging_, path_)) {
    // The old checkpoint now sits at the staging name; the new one is live.
    fs_->remove_all(staging_);
  } else {
    // No RENAME_EXCHANGE on this file system: move the old one aside first.
    // A crash between the two renames leaves no checkpoint at the path, but
    // the old one intact beside it under the ".dcpp-old" name.
    auto [dir, name] = split_parent(path_);
    const std::string old = join_path(dir, "." + name + ".dcpp-old");
    fs_->remove_all(old);
    fs_->rename(path_, old);
    fs_->rename(staging_, path_);
    fs_->fsync_dir(parent);
    fs_->remove_all(old);
  }
  fs_->fsync_dir(parent);
}

void FileSystemWriter::abort() noexcept {
  try {
    if (is_coordinator_) {
      fs_->remove_all(staging_);
    } else if (wrote_data_file_) {
      fs_->remove(join_path(staging_, data_file_name(rank_)));
    }
  } catch (...) {
    // abort runs after a failure; a second error must not hide the first.
  }
}

}  // namespace dcpp
