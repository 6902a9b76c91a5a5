// PyTorch DCP `.metadata` (torch.distributed.checkpoint.metadata.Metadata,
// pickled with the default protocol) ↔ dcpp Metadata.
#include "storage/torch_dcp/dcp_metadata.h"

#include <algorithm>
#include <map>

#include "dcpp/chunk_coverage.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/torch_dcp/pickle.h"
#include "storage/torch_dcp/torch_save.h"

namespace dcpp::torch_dcp {
namespace {

constexpr std::string_view kMetaModule = "torch.distributed.checkpoint.metadata";
constexpr std::string_view kShardModule = "torch.distributed._shard.sharded_tensor.metadata";

bool metadata_global(std::string_view module, std::string_view name) {
  if (module == kMetaModule) {
    return name == "Metadata" || name == "TensorStorageMetadata" || name == "BytesStorageMetadata" ||
           name == "ChunkStorageMetadata" || name == "TensorProperties" || name == "_MEM_FORMAT_ENCODING" ||
           name == "MetadataIndex" || name == "StorageMeta";
  }
  if (module == kShardModule) return name == "TensorProperties" || name == "MEM_FORMAT_ENCODING";
  if (module == "torch.distributed.checkpoint.filesystem") return name == "_StorageInfo";
  if (module == "torch") {
    DType d;
    return name == "Size" || name == "strided" || dtype_from_torch_attr(name, d);
  }
  if (module == "torch.serialization") return name == "_get_layout";
  if (module == "builtins") return name == "getattr";
  // StorageMeta.checkpoint_id may be a path object (pathlib moved PosixPath in Python 3.13).
  if (module == "pathlib" || module == "pathlib._local") return name == "PosixPath" || name == "WindowsPath";
  if (module == "collections") return name == "OrderedDict";
  return false;
}

class Decoder {
 public:
  Decoder(const PyGraph& g, const std::string& source) : g_(g), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const { pickle_error(source_, what); }

  const PyNode& at(uint32_t i) const { return g_.at(i); }

  // An object made by NEWOBJ/REDUCE of class `cls` (suffix match on the module path).
  bool is_object(const PyNode& n, std::string_view name) const {
    if (n.kind != PyKind::kCall) return false;
    const std::string& s = at(n.items[0]).s;
    return s.size() > name.size() && s.compare(s.size() - name.size(), name.size(), name) == 0 &&
           s[s.size() - name.size() - 1] == '.';
  }
  // The state dict of a dataclass object (BUILD state, or (None, slots) form).
  const PyNode* state_dict(const PyNode& obj, const char* what) const {
    if (obj.state == kNoNode) return nullptr;
    const PyNode* s = &at(obj.state);
    if (s->kind == PyKind::kTuple && s->items.size() == 2) s = &at(s->items[1]);
    if (s->kind != PyKind::kDict) fail(std::string(what) + " state is a " + std::string(py_kind_name(s->kind)));
    return s;
  }
  const PyNode* field(const PyNode* dict, std::string_view name) const {
    if (!dict) return nullptr;
    for (size_t i = 0; i + 1 < dict->items.size(); i += 2) {
      const PyNode& k = at(dict->items[i]);
      if (k.kind == PyKind::kStr && k.s == name) return &at(dict->items[i + 1]);
    }
    return nullptr;
  }
  const PyNode& need(const PyNode* dict, std::string_view name, const char* what) const {
    const PyNode* f = field(dict, name);
    if (!f) fail(std::string(what) + " has no field '" + std::string(name) + "'");
    return *f;
  }
  int64_t integer(const PyNode& n, const char* what) const {
    if (n.kind != PyKind::kInt) fail(std::string(what) + " is a " + std::string(py_kind_name(n.kind)) + ", expected int");
    return n.i;
  }
  const std::string& string(const PyNode& n, const char* what) const {
    if (n.kind != PyKind::kStr) fail(std::string(what) + " is a " + std::string(py_kind_name(n.kind)) + ", expected str");
    return n.s;
  }
  // torch.Size((...)) or a plain tuple/list of non-negative ints.
  Shape size(const PyNode& n, const char* what) const {
    const PyNode* t = &n;
    if (n.kind == PyKind::kCall) {
      if (at(n.items[0]).s != "torch.Size") fail(std::string(what) + " is an object of class " + at(n.items[0]).s);
      const PyNode& args = at(n.items[1]);
      if (args.items.size() != 1) fail(std::string(what) + ": torch.Size with " + std::to_string(args.items.size()) + " arguments");
      t = &at(args.items[0]);
    }
    if (t->kind != PyKind::kTuple && t->kind != PyKind::kList) fail(std::string(what) + " is not a size");
    Shape out;
    for (uint32_t i : t->items) {
      int64_t v = integer(at(i), what);
      if (v < 0 || v > (INT64_MAX >> 2)) fail(std::string(what) + " holds " + std::to_string(v));
      out.push_back(v);
    }
    return out;
  }
  DType dtype(const PyNode& props) const {
    if (!is_object(props, "TensorProperties")) fail("tensor properties are not a TensorProperties");
    if (props.state == kNoNode) fail("TensorProperties without state");
    const PyNode& s = at(props.state);
    const PyNode* d = nullptr;
    if (s.kind == PyKind::kTuple && !s.items.empty()) {
      d = &at(s.items[0]);  // __getstate__ tuple: (dtype, layout, requires_grad, memory_format, pin_memory[, strides])
    } else if (s.kind == PyKind::kDict) {
      d = field(&s, "dtype");
    }
    if (!d || d->kind != PyKind::kGlobal || d->s.rfind("torch.", 0) != 0) fail("TensorProperties without a torch dtype");
    DType out;
    if (!dtype_from_torch_attr(std::string_view(d->s).substr(6), out)) {
      throw Error(ErrorCode::kUnsupported, source_ + ": dtype " + d->s + " is not supported by dcpp");
    }
    return out;
  }

 private:
  const PyGraph& g_;
  const std::string& source_;
};

std::string index_key(const std::string& fqn, const Shape* offsets) {
  std::string k = fqn;
  k.push_back('\0');
  if (offsets) {
    for (int64_t o : *offsets) k += std::to_string(o) + ",";
  } else {
    k += "-";
  }
  return k;
}

}  // namespace

Metadata decode_dcp_metadata(const void* data, size_t size, const std::string& source) {
  UnpickleOptions opts;
  opts.allow_global = metadata_global;
  opts.max_input_bytes = UINT64_MAX;
  PyGraph g = unpickle(data, size, source, opts);
  Decoder d(g, source);
  const PyNode& root = g.at(g.root());
  if (!d.is_object(root, "Metadata")) d.fail("the pickle is not a torch.distributed.checkpoint Metadata");
  const PyNode* state = d.state_dict(root, "Metadata");
  const PyNode& sdm = d.need(state, "state_dict_metadata", "Metadata");
  if (sdm.kind != PyKind::kDict) d.fail("state_dict_metadata is not a dict");

  // storage_data: MetadataIndex → _StorageInfo.
  std::map<std::string, StorageLocation> where;
  const PyNode* storage = d.field(state, "storage_data");
  if (storage && storage->kind == PyKind::kDict) {
    for (size_t i = 0; i + 1 < storage->items.size(); i += 2) {
      const PyNode& idx = g.at(storage->items[i]);
      const PyNode& info = g.at(storage->items[i + 1]);
      if (!d.is_object(idx, "MetadataIndex")) d.fail("storage_data key is not a MetadataIndex");
      if (!d.is_object(info, "_StorageInfo")) d.fail("storage_data value is not a _StorageInfo");
      const PyNode* is = d.state_dict(idx, "MetadataIndex");
      const PyNode* ss = d.state_dict(info, "_StorageInfo");
      const std::string& fqn = d.string(d.need(is, "fqn", "MetadataIndex"), "MetadataIndex.fqn");
      const PyNode* off = d.field(is, "offset");
      Shape offsets;
      bool has_offsets = off && off->kind != PyKind::kNone;
      if (has_offsets) offsets = d.size(*off, "MetadataIndex.offset");
      StorageLocation loc;
      loc.file = d.string(d.need(ss, "relative_path", "_StorageInfo"), "_StorageInfo.relative_path");
      const int64_t o = d.integer(d.need(ss, "offset", "_StorageInfo"), "_StorageInfo.offset");
      const int64_t l = d.integer(d.need(ss, "length", "_StorageInfo"), "_StorageInfo.length");
      if (o < 0 || l < 0 || o > INT64_MAX - l) {
        d.fail("item '" + fqn + "' has offset " + std::to_string(o) + " and length " + std::to_string(l));
      }
      const PyNode* tr = d.field(ss, "transform_descriptors");
      if (tr && tr->kind != PyKind::kNone && !tr->items.empty()) {
        throw Error(ErrorCode::kUnsupported, source + ": item '" + fqn +
                                                 "' was written through storage transforms (e.g. compression), "
                                                 "which dcpp does not read");
      }
      validate_relative_file_name(fqn, loc.file);
      loc.byte_offset = static_cast<uint64_t>(o);
      loc.byte_length = static_cast<uint64_t>(l);
      where[index_key(fqn, has_offsets ? &offsets : nullptr)] = std::move(loc);
    }
  }

  Metadata md;
  md.format = "torch-dcp";
  md.block_size = 1;
  for (size_t i = 0; i + 1 < sdm.items.size(); i += 2) {
    const std::string& fqn = d.string(g.at(sdm.items[i]), "state_dict_metadata key");
    const PyNode& item = g.at(sdm.items[i + 1]);
    if (md.contains(fqn)) d.fail("key '" + fqn + "' appears twice");
    if (d.is_object(item, "BytesStorageMetadata")) {
      auto it = where.find(index_key(fqn, nullptr));
      if (it == where.end()) d.fail("value '" + fqn + "' has no storage_data entry");
      md.values[fqn] = ValueMeta{ValueKind::kBytes, it->second};
      continue;
    }
    if (!d.is_object(item, "TensorStorageMetadata")) d.fail("metadata of '" + fqn + "' is of an unknown class");
    const PyNode* ts = d.state_dict(item, "TensorStorageMetadata");
    TensorMeta tm;
    tm.dtype = d.dtype(d.need(ts, "properties", "TensorStorageMetadata"));
    tm.global_shape = d.size(d.need(ts, "size", "TensorStorageMetadata"), "TensorStorageMetadata.size");
    const PyNode& chunks = d.need(ts, "chunks", "TensorStorageMetadata");
    if (chunks.kind != PyKind::kList) d.fail("chunks of '" + fqn + "' are not a list");
    std::vector<ChunkBox> boxes;
    for (uint32_t ci : chunks.items) {
      const PyNode& c = g.at(ci);
      if (!d.is_object(c, "ChunkStorageMetadata")) d.fail("a chunk of '" + fqn + "' is not a ChunkStorageMetadata");
      const PyNode* cs = d.state_dict(c, "ChunkStorageMetadata");
      ChunkMeta cm;
      cm.offsets = d.size(d.need(cs, "offsets", "ChunkStorageMetadata"), "chunk offsets");
      cm.sizes = d.size(d.need(cs, "sizes", "ChunkStorageMetadata"), "chunk sizes");
      if (cm.offsets.size() != tm.global_shape.size() || cm.sizes.size() != tm.global_shape.size()) {
        d.fail("a chunk of '" + fqn + "' does not have the tensor's " + std::to_string(tm.global_shape.size()) + " dims");
      }
      if (shape_numel(cm.sizes) > 0) {
        auto it = where.find(index_key(fqn, &cm.offsets));
        if (it == where.end()) {
          d.fail("chunk " + shape_to_string(cm.offsets) + " of '" + fqn + "' has no storage_data entry");
        }
        cm.location = it->second;
      }
      boxes.push_back({cm.offsets, cm.sizes, 0});
      tm.chunks.push_back(std::move(cm));
    }
    try {
      validate_chunk_tiling(fqn, tm.global_shape, boxes);
    } catch (const Error& e) {
      d.fail("the chunks do not tile the tensor: " + e.message());
    }
    md.tensors[fqn] = std::move(tm);
  }

  // planner_data: the flatten mapping fqn → path tuple (DefaultSavePlanner).
  const PyNode* planner = d.field(state, "planner_data");
  if (planner && planner->kind == PyKind::kDict) {
    for (size_t i = 0; i + 1 < planner->items.size(); i += 2) {
      const PyNode& k = g.at(planner->items[i]);
      const PyNode& v = g.at(planner->items[i + 1]);
      if (k.kind != PyKind::kStr || (v.kind != PyKind::kTuple && v.kind != PyKind::kList)) continue;
      if (!md.contains(k.s)) continue;
      std::vector<PathElement> path;
      bool ok = true;
      for (uint32_t e : v.items) {
        const PyNode& el = g.at(e);
        if (el.kind == PyKind::kStr) {
          path.push_back(PathElement{false, el.s, 0});
        } else if (el.kind == PyKind::kInt) {
          path.push_back(PathElement{true, {}, el.i});
        } else {
          ok = false;
        }
      }
      if (ok && !path.empty()) md.paths[k.s] = std::move(path);
    }
  }
  for (const auto& [k, t] : md.tensors) {
    if (!md.paths.count(k)) md.paths[k] = {PathElement{false, k, 0}};
  }
  for (const auto& [k, v] : md.values) {
    if (!md.paths.count(k)) md.paths[k] = {PathElement{false, k, 0}};
  }
  return md;
}

namespace {

void object_start(Pickler& p, std::string_view module, std::string_view cls) {
  p.global(module, cls);
  p.tuple(0);
  p.newobj();
}

void torch_size(Pickler& p, const Shape& s) {
  p.global("torch", "Size");
  p.mark();
  for (int64_t v : s) p.integer(v);
  p.tuple_from_mark();
  p.tuple(1);
  p.reduce();
}

}  // namespace

std::string encode_dcp_metadata(const Metadata& md) {
  const std::string meta(kMetaModule);
  Pickler p;
  object_start(p, meta, "Metadata");
  p.empty_dict();
  p.mark();

  p.str("state_dict_metadata");
  p.empty_dict();
  p.mark();
  for (const auto& [fqn, t] : md.tensors) {
    p.str(fqn);
    object_start(p, meta, "TensorStorageMetadata");
    p.empty_dict();
    p.mark();
    p.str("properties");
    object_start(p, meta, "TensorProperties");
    // The 5-tuple every supported release's __setstate__ accepts.
    p.mark();
    p.global("torch", torch_dtype_attr(t.dtype));
    p.global("torch.serialization", "_get_layout");
    p.str("torch.strided");
    p.tuple(1);
    p.reduce();
    p.boolean(false);
    p.global(meta, "_MEM_FORMAT_ENCODING");
    p.integer(0);  // TORCH_CONTIGUOUS_FORMAT
    p.tuple(1);
    p.reduce();
    p.boolean(false);
    p.tuple_from_mark();
    p.build();
    p.str("size");
    torch_size(p, t.global_shape);
    p.str("chunks");
    p.empty_list();
    p.mark();
    for (const ChunkMeta& c : t.chunks) {
      if (shape_numel(c.sizes) == 0) continue;
      object_start(p, meta, "ChunkStorageMetadata");
      p.empty_dict();
      p.mark();
      p.str("offsets");
      torch_size(p, c.offsets);
      p.str("sizes");
      torch_size(p, c.sizes);
      p.setitems_from_mark();
      p.build();
    }
    p.appends_from_mark();
    p.setitems_from_mark();
    p.build();
  }
  for (const auto& [fqn, v] : md.values) {
    p.str(fqn);
    object_start(p, meta, "BytesStorageMetadata");
  }
  p.setitems_from_mark();

  p.str("planner_data");
  p.empty_dict();
  p.mark();
  for (const auto& [fqn, path] : md.paths) {
    if (!md.contains(fqn)) continue;
    p.str(fqn);
    p.mark();
    for (const PathElement& e : path) {
      if (e.is_index) {
        p.integer(e.index);
      } else {
        p.str(e.key);
      }
    }
    p.tuple_from_mark();
  }
  p.setitems_from_mark();

  auto storage_info = [&](const StorageLocation& loc) {
    object_start(p, "torch.distributed.checkpoint.filesystem", "_StorageInfo");
    p.empty_dict();
    p.mark();
    p.str("relative_path");
    p.str(loc.file);
    p.str("offset");
    p.integer(static_cast<int64_t>(loc.byte_offset));
    p.str("length");
    p.integer(static_cast<int64_t>(loc.byte_length));
    p.setitems_from_mark();
    p.build();
  };
  p.str("storage_data");
  p.empty_dict();
  p.mark();
  for (const auto& [fqn, t] : md.tensors) {
    int64_t index = 0;
    for (const ChunkMeta& c : t.chunks) {
      if (shape_numel(c.sizes) == 0) continue;
      object_start(p, meta, "MetadataIndex");
      p.empty_dict();
      p.mark();
      p.str("fqn");
      p.str(fqn);
      p.str("offset");
      torch_size(p, c.offsets);
      p.str("index");
      p.integer(index++);
      p.setitems_from_mark();
      p.build();
      storage_info(c.location);
    }
  }
  for (const auto& [fqn, v] : md.values) {
    object_start(p, meta, "MetadataIndex");
    p.empty_dict();
    p.mark();
    p.str("fqn");
    p.str(fqn);
    p.str("offset");
    p.none();
    p.str("index");
    p.none();
    p.setitems_from_mark();
    p.build();
    storage_info(v.location);
  }
  p.setitems_from_mark();

  p.str("version");
  p.str("1.0.0");
  p.setitems_from_mark();
  p.build();
  p.stop();
  return p.data();
}

}  // namespace dcpp::torch_dcp
