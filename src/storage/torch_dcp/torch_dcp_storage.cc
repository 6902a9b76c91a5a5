// TorchDcpWriter and TorchDcpReader (see torch_dcp_storage.h).
#include "dcpp/torch_dcp_storage.h"

#include <map>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/s3_file_system.h"
#include "storage/safetensors/interop_common.h"
#include "storage/torch_dcp/dcp_metadata.h"
#include "storage/torch_dcp/torch_save.h"

namespace dcpp {

using namespace torch_dcp;

namespace {

bool dcp_owned(const std::string& name) {
  if (name == kTorchDcpMetadataName || name == ".metadata.tmp") return true;
  return name.size() > 7 && name.compare(name.size() - 7, 7, ".distcp") == 0;
}

std::string distcp_name(int rank) { return "__" + std::to_string(rank) + "_0.distcp"; }

}  // namespace

// ---------------- writer ----------------

TorchDcpWriter::TorchDcpWriter(std::string path, TorchDcpWriterOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  if (path_.empty()) throw Error(ErrorCode::kInvalidArgument, "TorchDcpWriter: empty checkpoint path");
  fs_ = options_.filesystem ? options_.filesystem : default_file_system();
}

TorchDcpWriter::~TorchDcpWriter() = default;

void TorchDcpWriter::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  is_coordinator_ = is_coordinator;
}

void TorchDcpWriter::prepare() {
  interop::prepare_staging(*fs_, path_, options_.overwrite, dcp_owned, "PyTorch DCP");
}

std::vector<WriteResult> TorchDcpWriter::write_data(const SavePlan& plan, SavePlanner& planner) {
  std::vector<WriteResult> results;
  if (plan.items.empty()) return results;
  const std::string name = distcp_name(rank_);
  const std::string file = interop::join(staging_path(path_), name);
  std::unique_ptr<WritableFile> out = fs_->open_write(file);
  uint64_t at = 0;
  auto sink = [&](const void* data, size_t length) {
    interop::write_at(*out, data, length, at);
    at += length;
  };
  for (const WriteItem& item : plan.items) {
    const uint64_t start = at;
    WriteResult r;
    r.fqn = item.fqn;
    r.type = item.type;
    if (item.type == WriteItemType::kTensor) {
      Tensor t = planner.resolve_tensor(item);
      if (t.sizes() != item.sizes) {
        throw Error(ErrorCode::kInternal, "planner resolved '" + item.fqn + "' to shape " +
                                              shape_to_string(t.sizes()) + ", the plan says " + shape_to_string(item.sizes));
      }
      if (t.dtype() != item.dtype) t = t.to(item.dtype);
      if (!t.is_contiguous()) t = t.contiguous();
      write_tensor_archive(sink, t);
      r.offsets = item.offsets;
      r.sizes = item.sizes;
    } else {
      write_value_archive(sink, item.value_kind, planner.resolve_value(item));
    }
    r.location.file = name;
    r.location.byte_offset = start;
    r.location.byte_length = at - start;
    results.push_back(std::move(r));
  }
  out->sync();
  out->close();
  return results;
}

void TorchDcpWriter::finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) {
  for (const auto& rank_results : results) {
    for (const WriteResult& r : rank_results) {
      if (r.type == WriteItemType::kValue) {
        auto it = metadata.values.find(r.fqn);
        if (it == metadata.values.end()) throw Error(ErrorCode::kInternal, "value '" + r.fqn + "' not in the metadata");
        it->second.location = r.location;
        continue;
      }
      auto it = metadata.tensors.find(r.fqn);
      if (it == metadata.tensors.end()) throw Error(ErrorCode::kInternal, "tensor '" + r.fqn + "' not in the metadata");
      bool found = false;
      for (ChunkMeta& c : it->second.chunks) {
        if (c.offsets == r.offsets) {
          c.sizes = r.sizes;
          c.location = r.location;
          found = true;
        }
      }
      if (!found) it->second.chunks.push_back(ChunkMeta{r.offsets, r.sizes, r.location});
    }
  }
  const std::string bytes = encode_dcp_metadata(metadata);
  const std::string staging = staging_path(path_);
  const std::string tmp = interop::join(staging, ".metadata.tmp");
  {
    std::unique_ptr<WritableFile> f = fs_->open_write(tmp);
    interop::write_at(*f, bytes.data(), bytes.size(), 0);
    f->sync();
    f->close();
  }
  fs_->rename(tmp, interop::join(staging, std::string(kTorchDcpMetadataName)));
  interop::commit_staging(*fs_, path_);
}

void TorchDcpWriter::abort() noexcept {
  if (is_coordinator_) interop::abort_staging(*fs_, path_);
}

// ---------------- reader ----------------

struct TorchDcpReader::Impl {
  FileSystem* fs = nullptr;
  std::map<std::string, std::unique_ptr<RandomAccessFile>> handles;
  std::map<std::pair<std::string, uint64_t>, SavedTensor> tensors;  // (file, offset) → parsed archive
  std::map<std::string, Bytes> values;                              // decoded value bytes
  std::optional<Metadata> metadata;
};

TorchDcpReader::TorchDcpReader(std::string path, TorchDcpReaderOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  fs_ = options_.filesystem ? options_.filesystem : file_system_for_path(path_);
}

TorchDcpReader::~TorchDcpReader() = default;

void TorchDcpReader::set_up(int rank, int world_size, bool is_coordinator) { rank_ = rank; }

namespace {

RandomAccessFile& open_data(FileSystem& fs, std::map<std::string, std::unique_ptr<RandomAccessFile>>& handles,
                            const std::string& dir, const std::string& name) {
  auto it = handles.find(name);
  if (it != handles.end()) return *it->second;
  std::unique_ptr<RandomAccessFile> h;
  try {
    h = fs.open_read(interop::join(dir, name));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    throw Error(ErrorCode::kCorrupt, "data file " + interop::quoted(interop::join(dir, name)) +
                                         " named by the .metadata is missing");
  }
  return *handles.emplace(name, std::move(h)).first->second;
}

}  // namespace

Metadata TorchDcpReader::read_metadata() {
  impl_ = std::make_unique<Impl>();
  impl_->fs = fs_.get();
  const std::string meta_path = interop::join(path_, std::string(kTorchDcpMetadataName));
  if (fs_->file_type(path_) != FileType::kDirectory) {
    throw Error(ErrorCode::kNotFound, "no PyTorch DCP checkpoint at " + interop::quoted(path_) + ": not a directory");
  }
  if (fs_->file_type(meta_path) == FileType::kNone) {
    throw Error(ErrorCode::kNotFound, "PyTorch DCP checkpoint " + interop::quoted(path_) +
                                          " has no .metadata (incomplete save, or not a DCP checkpoint)");
  }
  const uint64_t size = fs_->file_size(meta_path);
  if (size > options_.max_metadata_bytes) {
    throw Error(ErrorCode::kCorrupt, meta_path + ": " + std::to_string(size) + " bytes exceeds the limit of " +
                                         std::to_string(options_.max_metadata_bytes));
  }
  std::vector<std::byte> bytes(static_cast<size_t>(size));
  {
    std::unique_ptr<RandomAccessFile> f = fs_->open_read(meta_path);
    if (f->read_full(bytes.data(), bytes.size(), 0) != size) {
      throw Error(ErrorCode::kCorrupt, meta_path + ": short read");
    }
  }
  Metadata md = decode_dcp_metadata(bytes.data(), bytes.size(), meta_path);
  // Values: decode each item now so that its kind is known.
  for (auto& [key, v] : md.values) {
    RandomAccessFile& h = open_data(*fs_, impl_->handles, path_, v.location.file);
    SavedValue sv = parse_value_archive(h, v.location.byte_offset, v.location.byte_length,
                                        options_.max_value_bytes,
                                        v.location.file + " at byte offset " + std::to_string(v.location.byte_offset) +
                                            " (value '" + key + "')");
    v.kind = sv.kind;
    impl_->values[key] = std::move(sv.encoded);
  }
  impl_->metadata = md;
  return md;
}

void TorchDcpReader::read_data(const LoadPlan& plan, LoadPlanner& planner) {
  if (!impl_ || !impl_->metadata) read_metadata();
  const Metadata& md = *impl_->metadata;
  for (const ReadItem& item : plan.items) {
    if (item.type == ReadItemType::kValue) {
      auto it = impl_->values.find(item.fqn);
      if (it == impl_->values.end()) throw Error(ErrorCode::kNotFound, "the checkpoint has no value '" + item.fqn + "'");
      planner.load_value(item, it->second);
      continue;
    }
    auto it = md.tensors.find(item.fqn);
    if (it == md.tensors.end() || item.chunk_index >= it->second.chunks.size()) {
      throw Error(ErrorCode::kNotFound, "the checkpoint has no chunk " + std::to_string(item.chunk_index) +
                                            " of tensor '" + item.fqn + "'");
    }
    const ChunkMeta& c = it->second.chunks[item.chunk_index];
    RandomAccessFile& h = open_data(*fs_, impl_->handles, path_, c.location.file);
    const std::string source = c.location.file + " at byte offset " + std::to_string(c.location.byte_offset) +
                               " (tensor '" + item.fqn + "' chunk " + shape_to_string(c.offsets) + ", rank " +
                               std::to_string(rank_) + ")";
    auto key = std::make_pair(c.location.file, c.location.byte_offset);
    auto cached = impl_->tensors.find(key);
    if (cached == impl_->tensors.end()) {
      SavedTensor t = parse_tensor_archive(h, c.location.byte_offset, c.location.byte_length, source);
      if (t.sizes != c.sizes) {
        throw Error(ErrorCode::kCorrupt, source + ": the archive holds a tensor of size " + shape_to_string(t.sizes) +
                                             ", the .metadata says " + shape_to_string(c.sizes));
      }
      if (t.dtype != it->second.dtype) {
        throw Error(ErrorCode::kCorrupt, source + ": the archive holds " + std::string(dtype_name(t.dtype)) +
                                             ", the .metadata says " + std::string(dtype_name(it->second.dtype)));
      }
      cached = impl_->tensors.emplace(key, t).first;
    }
    const SavedTensor& t = cached->second;
    Tensor dest = planner.resolve_tensor(item);
    interop::read_strided_box(h, source, t.data_offset, t.data_length, t.dtype, t.strides, t.storage_offset,
                              item.storage_offsets, item.lengths, dest);
  }
}

}  // namespace dcpp
