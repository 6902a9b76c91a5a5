// Format detection and conversions between checkpoint formats. Both
// directions stream: a planner that reads each tensor from the source only
// when the writer asks for it, so one tensor is in memory at a time.
#include <algorithm>

#include "dcpp/checkpoint_reader.h"
#include "dcpp/s3_file_system.h"
#include "dcpp/save_load.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"
#include "storage/safetensors/interop_common.h"
#include "storage/safetensors/safetensors_format.h"

namespace dcpp {

std::string_view checkpoint_format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::kNative: return "dcpp";
    case CheckpointFormat::kSafetensors: return "safetensors";
    case CheckpointFormat::kTorchDcp: return "torch-dcp";
    case CheckpointFormat::kUnknown: return "unknown";
  }
  return "unknown";
}

CheckpointFormat detect_checkpoint_format(const std::string& path, FileSystem* fs) {
  FileSystemPtr holder;
  if (!fs) {
    holder = file_system_for_path(path);
    fs = holder.get();
  }
  const FileType type = fs->file_type(path);
  auto is_st = [](const std::string& n) {
    return n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
  };
  if (type == FileType::kRegular) return is_st(path) ? CheckpointFormat::kSafetensors : CheckpointFormat::kUnknown;
  if (type != FileType::kDirectory) return CheckpointFormat::kUnknown;
  const auto names = fs->list_dir(path);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (has(std::string(kMetadataFileName))) return CheckpointFormat::kNative;
  if (has(std::string(kTorchDcpMetadataName))) return CheckpointFormat::kTorchDcp;
  if (std::any_of(names.begin(), names.end(), is_st)) return CheckpointFormat::kSafetensors;
  return CheckpointFormat::kUnknown;
}

std::unique_ptr<StorageReader> open_storage_reader(const std::string& path, FileSystemPtr fs) {
  if (!fs) fs = file_system_for_path(path);
  switch (detect_checkpoint_format(path, fs.get())) {
    case CheckpointFormat::kNative: return std::make_unique<FileSystemReader>(path, FileSystemReaderOptions{fs});
    case CheckpointFormat::kSafetensors:
      return std::make_unique<SafetensorsReader>(path, SafetensorsReaderOptions{fs});
    case CheckpointFormat::kTorchDcp: return std::make_unique<TorchDcpReader>(path, TorchDcpReaderOptions{fs});
    case CheckpointFormat::kUnknown: break;
  }
  throw Error(ErrorCode::kNotFound, "no checkpoint of a known format (dcpp, safetensors, PyTorch DCP) at " +
                                        interop::quoted(path));
}

namespace {

// Hands the writer whole tensors read from a source checkpoint on demand.
class StreamingSavePlanner final : public SavePlanner {
 public:
  explicit StreamingSavePlanner(CheckpointReader& source) : source_(source) {}
  void set_up(const FlatStateDict&, int, bool) override {}
  SavePlan create_local_plan() override {
    SavePlan plan;
    const Metadata& md = source_.metadata();
    for (const auto& [key, t] : md.tensors) {
      WriteItem item;
      item.fqn = key;
      item.type = WriteItemType::kTensor;
      item.dtype = t.dtype;
      item.global_shape = t.global_shape;
      item.offsets = Shape(t.global_shape.size(), 0);
      item.sizes = t.global_shape;
      item.nbytes = static_cast<uint64_t>(shape_numel(t.global_shape)) * dtype_size(t.dtype);
      (item.nbytes > 0 ? plan.items : plan.empty_chunks).push_back(std::move(item));
    }
    for (const auto& [key, v] : md.values) {
      WriteItem item;
      item.fqn = key;
      item.type = WriteItemType::kValue;
      item.value_kind = v.kind;
      plan.items.push_back(std::move(item));
    }
    return plan;
  }
  std::vector<SavePlan> create_global_plan(std::vector<SavePlan> local_plans) override { return local_plans; }
  Tensor resolve_tensor(const WriteItem& item) override { return source_.read(item.fqn); }
  Bytes resolve_value(const WriteItem& item) override { return encode_value(source_.value(item.fqn)); }
  std::map<std::string, std::vector<PathElement>> paths() const override { return source_.metadata().paths; }

 private:
  CheckpointReader& source_;
};

// Drives one writer as a single-rank save of the source's contents.
void stream_into(CheckpointReader& source, StorageWriter& writer) {
  StreamingSavePlanner planner(source);
  writer.set_up(0, 1, true);
  try {
    writer.prepare();
    SavePlan plan = planner.create_local_plan();
    std::vector<WriteResult> results = writer.write_data(plan, planner);
    Metadata md;
    md.dcpp_version = source.metadata().dcpp_version;
    for (const auto& [key, t] : source.metadata().tensors) {
      TensorMeta tm;
      tm.dtype = t.dtype;
      tm.global_shape = t.global_shape;
      if (shape_numel(t.global_shape) == 0) {
        tm.chunks.push_back(ChunkMeta{Shape(t.global_shape.size(), 0), t.global_shape, {}});
      }
      md.tensors[key] = std::move(tm);
    }
    for (const auto& [key, v] : source.metadata().values) md.values[key] = ValueMeta{v.kind, {}};
    md.paths = planner.paths();
    for (const auto& [key, t] : md.tensors) {
      if (!md.paths.count(key)) md.paths[key] = {PathElement{false, key, 0}};
    }
    for (const auto& [key, v] : md.values) {
      if (!md.paths.count(key)) md.paths[key] = {PathElement{false, key, 0}};
    }
    writer.finish(std::move(md), {results});
  } catch (...) {
    writer.abort();
    throw;
  }
}

// A conversion into a writer whose options need only the file system.
template <typename Writer, typename WriterOptions>
void convert_with(const std::string& src_path, const std::string& dst_path, FileSystemPtr fs) {
  if (!fs) fs = default_file_system();
  CheckpointReader source(open_storage_reader(src_path, fs));
  WriterOptions wo;
  wo.filesystem = fs;
  Writer writer(dst_path, wo);
  stream_into(source, writer);
}

}  // namespace

void consolidate_to_safetensors(const std::string& src_path, const std::string& dst_path,
                                const ConsolidateOptions& options) {
  FileSystemPtr fs = options.filesystem ? options.filesystem : default_file_system();
  CheckpointReader source(open_storage_reader(src_path, fs));
  if (options.torch_compatible) {
    for (const auto& [key, t] : source.metadata().tensors) safetensors_detail::check_torch_compatible(key, t.dtype);
  }
  SafetensorsWriterOptions wo;
  wo.filesystem = fs;
  wo.layout = SafetensorsLayout::kFull;
  wo.max_shard_size = options.max_shard_size;
  wo.torch_compatible = options.torch_compatible;
  wo.overwrite = options.overwrite;
  SafetensorsWriter writer(dst_path, wo);
  stream_into(source, writer);
}

void convert_to_dcpp(const std::string& src_path, const std::string& dst_path, FileSystemPtr fs) {
  convert_with<FileSystemWriter, FileSystemWriterOptions>(src_path, dst_path, std::move(fs));
}

void convert_to_dcpp(const std::string& src_path, const std::string& dst_path, const FileSystemWriterOptions& options) {
  FileSystemWriterOptions wo = options;
  if (!wo.filesystem) wo.filesystem = default_file_system();
  CheckpointReader source(open_storage_reader(src_path, wo.filesystem));
  FileSystemWriter writer(dst_path, wo);
  stream_into(source, writer);
}

void convert_to_torch_dcp(const std::string& src_path, const std::string& dst_path, FileSystemPtr fs) {
  convert_with<TorchDcpWriter, TorchDcpWriterOptions>(src_path, dst_path, std::move(fs));
}

}  // namespace dcpp
