// SafetensorsWriter and SafetensorsReader (see safetensors_storage.h).
#include "dcpp/safetensors_storage.h"

#include <simdjson.h>

#include <algorithm>
#include <map>
#include <set>

#include "dcpp/chunk_coverage.h"
#include "dcpp/checkpoint_reader.h"
#include "dcpp/s3_file_system.h"
#include "dcpp/save_load.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/safetensors/interop_common.h"
#include "storage/safetensors/safetensors_format.h"

namespace dcpp {

using namespace safetensors_detail;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_safetensors_name(const std::string& name) { return ends_with(name, ".safetensors") && name[0] != '.'; }

// What a safetensors save may leave in (and so replace in) a directory.
bool safetensors_owned(const std::string& name) {
  return is_safetensors_name(name) || name == kSafetensorsIndexName || name == kShardedDir;
}

bool whole(const WriteItem& item) {
  for (size_t d = 0; d < item.offsets.size(); ++d) {
    if (item.offsets[d] != 0 || item.sizes[d] != item.global_shape[d]) return false;
  }
  return item.sizes.size() == item.global_shape.size();
}

// Offsets JSON of the sharded layout: {"fqn": {"saved_offsets": [..]}}.
std::string sharding_info_json(const std::vector<std::pair<std::string, Shape>>& chunks) {
  std::string json = "{";
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (i) json += ",";
    json += interop::json_string(chunks[i].first) + ":{\"saved_offsets\":" + interop::shape_json(chunks[i].second) + "}";
  }
  return json + "}";
}

}  // namespace

// ---------------- writer ----------------

SafetensorsWriter::SafetensorsWriter(std::string path, SafetensorsWriterOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  if (path_.empty()) throw Error(ErrorCode::kInvalidArgument, "SafetensorsWriter: empty checkpoint path");
  fs_ = options_.filesystem ? options_.filesystem : default_file_system();
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::set_up(int rank, int world_size, bool is_coordinator) {
  rank_ = rank;
  world_size_ = world_size;
  is_coordinator_ = is_coordinator;
}

void SafetensorsWriter::prepare() {
  interop::prepare_staging(*fs_, path_, options_.overwrite, safetensors_owned, "safetensors");
  if (options_.layout == SafetensorsLayout::kFull && world_size_ > 1) {
    fs_->mkdir(interop::join(staging_path(path_), kShardedDir));
  }
}

// The items this rank writes: its plan's, and — on the coordinator — every
// zero-size tensor whole (offset 0, its global shape). Such a tensor has no
// chunk with bytes, and safetensors knows a tensor only by an entry for it.
std::vector<WriteItem> SafetensorsWriter::items_to_write(const SavePlan& plan) const {
  std::vector<WriteItem> items = plan.items;
  if (!is_coordinator_) return items;
  std::set<std::string> zero_size;
  for (const WriteItem& item : plan.empty_chunks) {
    if (shape_numel(item.global_shape) != 0 || !zero_size.insert(item.fqn).second) continue;
    WriteItem whole_item = item;
    whole_item.offsets = Shape(item.global_shape.size(), 0);
    whole_item.sizes = item.global_shape;
    items.push_back(std::move(whole_item));
  }
  return items;
}

std::vector<WriteResult> SafetensorsWriter::write_data(const SavePlan& plan, SavePlanner& planner) {
  std::vector<WriteResult> results;
  const std::vector<WriteItem> items = items_to_write(plan);
  if (options_.torch_compatible) {
    for (const WriteItem& item : items) {
      if (item.type == WriteItemType::kTensor) check_torch_compatible(item.fqn, item.dtype);
    }
  }
  const std::string staging = staging_path(path_);
  std::map<std::string, std::pair<ValueKind, Bytes>> values;
  for (const WriteItem& item : items) {
    if (item.type == WriteItemType::kValue) values[item.fqn] = {item.value_kind, planner.resolve_value(item)};
  }
  auto value_result = [&](const std::string& fqn, const std::string& file) {
    WriteResult r;
    r.fqn = fqn;
    r.type = WriteItemType::kValue;
    r.location.file = file;
    r.location.byte_length = values.at(fqn).second.size();
    results.push_back(std::move(r));
  };
  auto tensor_result = [&](const WriteItem& item, const std::string& file, uint64_t offset) {
    WriteResult r;
    r.fqn = item.fqn;
    r.type = WriteItemType::kTensor;
    r.offsets = item.offsets;
    r.sizes = item.sizes;
    r.location.file = file;
    r.location.byte_offset = offset;
    r.location.byte_length = static_cast<uint64_t>(shape_numel(item.sizes)) * dtype_size(item.dtype);
    results.push_back(std::move(r));
  };
  auto file_tensor = [&](const WriteItem& item) {
    return FileTensor{item.fqn, item.dtype, item.sizes, [&planner, &item] {
                        return item.nbytes == 0 ? Tensor::zeros(item.sizes, item.dtype) : planner.resolve_tensor(item);
                      }};
  };

  const bool all_whole = std::all_of(items.begin(), items.end(), [](const WriteItem& i) {
    return i.type != WriteItemType::kTensor || whole(i);
  });
  if (options_.layout == SafetensorsLayout::kFull && world_size_ == 1 && all_whole) {
    // One rank holding whole tensors: the final files directly.
    std::vector<FileTensor> tensors;
    std::vector<const WriteItem*> written;
    for (const WriteItem& item : items) {
      if (item.type == WriteItemType::kTensor) {
        tensors.push_back(file_tensor(item));
        written.push_back(&item);
      }
    }
    auto files = write_full_layout(*fs_, staging, tensors, values, options_.max_shard_size);
    size_t k = 0;
    for (const auto& f : files) {
      for (size_t i = 0; i < f.keys.size(); ++i, ++k) tensor_result(*written[k], f.name, f.offsets[i]);
    }
    for (const auto& [fqn, v] : values) value_result(fqn, files.front().name);
    return results;
  }

  if (items.empty()) return results;
  // Sharded form: the n-th chunk of a key on this rank goes to file n.
  std::vector<std::vector<const WriteItem*>> per_file;
  std::map<std::string, size_t> seen;
  for (const WriteItem& item : items) {
    if (item.type != WriteItemType::kTensor) continue;
    size_t n = seen[item.fqn]++;
    if (per_file.size() <= n) per_file.resize(n + 1);
    per_file[n].push_back(&item);
  }
  if (per_file.empty()) per_file.resize(1);
  std::string dir = staging;
  std::string prefix;
  if (options_.layout == SafetensorsLayout::kFull) {
    dir = interop::join(staging, kShardedDir);
    prefix = std::string(kShardedDir) + "/";
  }
  for (size_t f = 0; f < per_file.size(); ++f) {
    // PyTorch numbers shards from 1 (shard_index = rank + 1).
    const std::string name = sharded_file_name(rank_ + 1, f + 1, per_file.size());
    std::vector<FileTensor> tensors;
    std::vector<std::pair<std::string, Shape>> offsets;
    for (const WriteItem* item : per_file[f]) {
      tensors.push_back(file_tensor(*item));
      offsets.emplace_back(item->fqn, item->offsets);
    }
    std::map<std::string, std::string> meta{
        {"format", "pt"}, {kDcpVersionKey, "1.0"}, {kShardingInfoKey, sharding_info_json(offsets)}};
    if (f == 0 && !values.empty()) meta[kValuesKey] = encode_values_json(values);
    auto at = write_safetensors_file(*fs_, interop::join(dir, name), tensors, meta);
    for (size_t i = 0; i < per_file[f].size(); ++i) tensor_result(*per_file[f][i], prefix + name, at[i]);
    if (f == 0) {
      for (const auto& [fqn, v] : values) value_result(fqn, prefix + name);
    }
  }
  return results;
}

void SafetensorsWriter::finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) {
  const std::string staging = staging_path(path_);
  bool direct = false, consolidate = false;
  for (const auto& rank_results : results) {
    for (const WriteResult& r : rank_results) {
      if (r.location.file.rfind(std::string(kShardedDir) + "/", 0) == 0) {
        consolidate = true;
      } else if (r.location.file.rfind("model-", 0) == 0) {
        direct = true;
      }
    }
  }
  if (options_.layout == SafetensorsLayout::kFull && !direct) {
    if (consolidate) {
      // Streams the sharded parts into whole tensors, one at a time.
      const std::string parts = interop::join(staging, kShardedDir);
      CheckpointReader reader(std::make_unique<SafetensorsReader>(parts, SafetensorsReaderOptions{fs_}));
      std::vector<FileTensor> tensors;
      for (const auto& [key, t] : metadata.tensors) {
        tensors.push_back(FileTensor{key, t.dtype, t.global_shape, [&reader, k = key, s = t.global_shape, d = t.dtype] {
                                       return shape_numel(s) == 0 ? Tensor::zeros(s, d) : reader.read(k);
                                     }});
      }
      std::map<std::string, std::pair<ValueKind, Bytes>> values;
      for (const auto& [key, v] : metadata.values) {
        const StateValue value = reader.value(key);
        values[key] = {v.kind, encode_value(value)};
      }
      write_full_layout(*fs_, staging, tensors, values, options_.max_shard_size);
    } else {
      // Nothing was written (an empty state dict, or only empty tensors).
      std::vector<FileTensor> tensors;
      for (const auto& [key, t] : metadata.tensors) {
        tensors.push_back(FileTensor{key, t.dtype, t.global_shape, [s = t.global_shape, d = t.dtype] {
                                       return Tensor::zeros(s, d);
                                     }});
      }
      write_full_layout(*fs_, staging, tensors, {}, options_.max_shard_size);
    }
    fs_->remove_all(interop::join(staging, kShardedDir));
  }
  interop::commit_staging(*fs_, path_);
}

void SafetensorsWriter::abort() noexcept {
  if (is_coordinator_) interop::abort_staging(*fs_, path_);
}

// ---------------- reader ----------------

struct SafetensorsReader::Impl {
  std::string dir;
  std::map<std::string, std::unique_ptr<RandomAccessFile>> handles;
  std::map<std::string, std::pair<ValueKind, Bytes>> values;
  std::optional<Metadata> metadata;
  FileSystem* fs = nullptr;
  RandomAccessFile& handle(const std::string& name) {
    auto it = handles.find(name);
    if (it != handles.end()) return *it->second;
    return *handles.emplace(name, fs->open_read(interop::join(dir, name))).first->second;
  }
};

SafetensorsReader::SafetensorsReader(std::string path, SafetensorsReaderOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  fs_ = options_.filesystem ? options_.filesystem : file_system_for_path(path_);
}

SafetensorsReader::~SafetensorsReader() = default;

void SafetensorsReader::set_up(int rank, int world_size, bool is_coordinator) { rank_ = rank; }

Metadata SafetensorsReader::read_metadata() {
  impl_ = std::make_unique<Impl>();
  impl_->fs = fs_.get();
  std::vector<std::string> names;
  const FileType type = fs_->file_type(path_);
  if (type == FileType::kNone) throw Error(ErrorCode::kNotFound, "no safetensors checkpoint at " + interop::quoted(path_));
  if (type == FileType::kDirectory) {
    impl_->dir = path_;
    for (const auto& n : fs_->list_dir(path_)) {
      if (is_safetensors_name(n)) names.push_back(n);
    }
    if (names.empty()) {
      throw Error(ErrorCode::kNotFound, "no .safetensors files in " + interop::quoted(path_));
    }
  } else {
    auto slash = path_.find_last_of('/');
    impl_->dir = slash == std::string::npos ? "." : path_.substr(0, slash);
    names.push_back(slash == std::string::npos ? path_ : path_.substr(slash + 1));
  }

  Metadata md;
  md.format = "safetensors";
  md.world_size = 1;
  std::map<std::string, std::string> first_file;  // key → file, for messages
  for (const auto& name : names) {
    const std::string full = interop::join(impl_->dir, name);
    SafetensorsHeader h = read_safetensors_header(*fs_, full);
    std::map<std::string, Shape> offsets;
    auto info = h.metadata.find(kShardingInfoKey);
    if (info != h.metadata.end()) {
      simdjson::dom::parser parser;
      simdjson::padded_string padded(info->second);
      simdjson::dom::object obj;
      if (parser.parse(padded).get_object().get(obj)) {
        throw Error(ErrorCode::kCorrupt, "safetensors file " + full + ": DCP_SHARDING_INFO is not a JSON object");
      }
      for (auto field : obj) {
        simdjson::dom::array arr;
        if (field.value["saved_offsets"].get_array().get(arr)) {
          throw Error(ErrorCode::kCorrupt, "safetensors file " + full + ": DCP_SHARDING_INFO entry '" +
                                               std::string(field.key) + "' has no saved_offsets array");
        }
        Shape o;
        for (auto v : arr) {
          uint64_t x;
          if (v.get_uint64().get(x) || x > static_cast<uint64_t>(INT64_MAX / 2)) {
            throw Error(ErrorCode::kCorrupt, "safetensors file " + full + ": bad saved_offsets for '" +
                                                 std::string(field.key) + "'");
          }
          o.push_back(static_cast<int64_t>(x));
        }
        offsets[std::string(field.key)] = std::move(o);
      }
    }
    auto vals = h.metadata.find(kValuesKey);
    if (vals != h.metadata.end()) {
      for (auto& [k, v] : decode_values_json(vals->second, full)) {
        if (impl_->values.count(k) || md.tensors.count(k)) {
          throw Error(ErrorCode::kCorrupt, "safetensors checkpoint " + path_ + ": value '" + k + "' appears twice");
        }
        ValueMeta vm;
        vm.kind = v.first;
        vm.location.file = name;
        vm.location.byte_length = v.second.size();
        md.values[k] = vm;
        md.paths[k] = {PathElement{false, k, 0}};
        impl_->values[k] = std::move(v);
      }
    }
    for (const auto& e : h.tensors) {
      ChunkMeta c;
      auto o = offsets.find(e.name);
      c.offsets = o != offsets.end() ? o->second : Shape(e.shape.size(), 0);
      if (c.offsets.size() != e.shape.size()) {
        throw Error(ErrorCode::kCorrupt, "safetensors file " + full + ": saved_offsets of '" + e.name + "' have " +
                                             std::to_string(c.offsets.size()) + " entries for a " +
                                             std::to_string(e.shape.size()) + "-d tensor");
      }
      c.sizes = e.shape;
      c.location.file = name;
      c.location.byte_offset = h.data_start + e.begin;
      c.location.byte_length = e.end - e.begin;
      if (md.values.count(e.name)) {
        throw Error(ErrorCode::kCorrupt, "safetensors checkpoint " + path_ + ": '" + e.name + "' is a tensor and a value");
      }
      auto [it, fresh] = md.tensors.try_emplace(e.name);
      TensorMeta& t = it->second;
      if (fresh) {
        t.dtype = e.dtype;
        t.global_shape = Shape(e.shape.size(), 0);
        first_file[e.name] = name;
        md.paths[e.name] = {PathElement{false, e.name, 0}};
      } else if (t.dtype != e.dtype || t.global_shape.size() != e.shape.size()) {
        throw Error(ErrorCode::kCorrupt, "tensor '" + e.name + "' is " + std::string(dtype_name(e.dtype)) + " " +
                                             std::to_string(e.shape.size()) + "-d in " + name + " but " +
                                             std::string(dtype_name(t.dtype)) + " " +
                                             std::to_string(t.global_shape.size()) + "-d in " + first_file[e.name]);
      }
      for (size_t d = 0; d < e.shape.size(); ++d) {
        t.global_shape[d] = std::max(t.global_shape[d], c.offsets[d] + c.sizes[d]);
      }
      t.chunks.push_back(std::move(c));
    }
  }
  for (const auto& [key, t] : md.tensors) {
    std::vector<ChunkBox> boxes;
    for (const auto& c : t.chunks) boxes.push_back({c.offsets, c.sizes, 0});
    try {
      validate_chunk_tiling(key, t.global_shape, boxes);
    } catch (const Error& e) {
      throw Error(ErrorCode::kCorrupt, "safetensors checkpoint " + interop::quoted(path_) +
                                           ": the saved chunks do not tile the tensor: " + e.message());
    }
  }
  // The index, when present, must agree with the files.
  const std::string index_path = interop::join(impl_->dir, std::string(kSafetensorsIndexName));
  if (type == FileType::kDirectory && fs_->file_type(index_path) == FileType::kRegular) {
    const uint64_t size = fs_->file_size(index_path);
    if (size > kMaxSafetensorsHeader) throw Error(ErrorCode::kCorrupt, index_path + " is too large");
    std::string text(static_cast<size_t>(size), '\0');
    {
      std::unique_ptr<RandomAccessFile> f = fs_->open_read(index_path);
      if (f->read_full(text.data(), text.size(), 0) != size) {
        throw Error(ErrorCode::kCorrupt, index_path + ": short read");
      }
    }
    simdjson::dom::parser parser;
    simdjson::padded_string padded(text);
    simdjson::dom::object wm;
    if (parser.parse(padded)["weight_map"].get_object().get(wm)) {
      throw Error(ErrorCode::kCorrupt, index_path + ": no weight_map object");
    }
    for (auto field : wm) {
      std::string_view file;
      const std::string key(field.key);
      if (field.value.get_string().get(file)) throw Error(ErrorCode::kCorrupt, index_path + ": bad weight_map entry '" + key + "'");
      auto it = md.tensors.find(key);
      bool found = false;
      if (it != md.tensors.end()) {
        for (const auto& c : it->second.chunks) found = found || c.location.file == file;
      }
      if (!found) {
        throw Error(ErrorCode::kCorrupt, index_path + ": weight_map places '" + key + "' in " + std::string(file) +
                                             ", which does not hold it");
      }
    }
  }
  impl_->metadata = md;
  return md;
}

void SafetensorsReader::read_data(const LoadPlan& plan, LoadPlanner& planner) {
  if (!impl_ || !impl_->metadata) read_metadata();
  const Metadata& md = *impl_->metadata;
  for (const ReadItem& item : plan.items) {
    if (item.type == ReadItemType::kValue) {
      auto it = impl_->values.find(item.fqn);
      if (it == impl_->values.end()) throw Error(ErrorCode::kNotFound, "the checkpoint has no value '" + item.fqn + "'");
      planner.load_value(item, it->second.second);
      continue;
    }
    auto it = md.tensors.find(item.fqn);
    if (it == md.tensors.end() || item.chunk_index >= it->second.chunks.size()) {
      throw Error(ErrorCode::kNotFound, "the checkpoint has no chunk " + std::to_string(item.chunk_index) +
                                            " of tensor '" + item.fqn + "'");
    }
    const ChunkMeta& c = it->second.chunks[item.chunk_index];
    Tensor dest = planner.resolve_tensor(item);
    interop::read_strided_box(impl_->handle(c.location.file),
                              "safetensors file " + interop::join(impl_->dir, c.location.file) + ", tensor '" +
                                  item.fqn + "'",
                              c.location.byte_offset, c.location.byte_length, it->second.dtype,
                              contiguous_strides(c.sizes), 0, item.storage_offsets, item.lengths, dest);
  }
}

}  // namespace dcpp
