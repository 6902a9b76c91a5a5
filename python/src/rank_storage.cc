// One rank's native writer and reader for storage layers written in Python
// (dcpp.torch): the items of a plan made elsewhere, their data as DLPack or
// NumPy views, and the FileSystemWriter/FileSystemReader doing the rest.
#include "rank_storage.h"

#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/planner.h"
#include "state_dicts.h"

namespace dcpp::python {
namespace {

using namespace nb::literals;

Shape to_shape(nb::handle seq) { return nb::cast<Shape>(seq); }

nb::list shape_list(const Shape& shape) {
  nb::list l;
  for (int64_t s : shape) l.append(s);
  return l;
}

[[noreturn]] void not_driven_here(const char* what) {
  throw Error(ErrorCode::kInternal, std::string(what) + " is planned by the caller of this storage, not here");
}

// Hands the writer the caller's data in plan order: FileSystemWriter resolves
// every item once, on the calling thread, in the order of the plan.
class ListSavePlanner final : public SavePlanner {
 public:
  ListSavePlanner(std::vector<Tensor> tensors, std::vector<Bytes> values)
      : tensors_(std::move(tensors)), values_(std::move(values)) {}
  void set_up(const FlatStateDict&, int, bool) override { not_driven_here("save planning"); }
  SavePlan create_local_plan() override { not_driven_here("save planning"); }
  std::vector<SavePlan> create_global_plan(std::vector<SavePlan>) override { not_driven_here("save planning"); }
  Tensor resolve_tensor(const WriteItem& item) override { return next(tensors_, next_tensor_, item.fqn); }
  Bytes resolve_value(const WriteItem& item) override { return next(values_, next_value_, item.fqn); }
  std::map<std::string, std::vector<PathElement>> paths() const override { return {}; }

 private:
  template <typename T>
  static T next(std::vector<T>& list, size_t& at, const std::string& fqn) {
    if (at >= list.size()) throw Error(ErrorCode::kInternal, "no data was handed over for '" + fqn + "'");
    return std::move(list[at++]);
  }
  std::vector<Tensor> tensors_;
  std::vector<Bytes> values_;
  size_t next_tensor_ = 0;
  size_t next_value_ = 0;
};

// Hands the reader the caller's destinations in plan order (FileSystemReader
// resolves them up front, on the calling thread) and keeps the values read.
class ListLoadPlanner final : public LoadPlanner {
 public:
  explicit ListLoadPlanner(std::vector<Tensor> targets) : targets_(std::move(targets)) {}
  void set_up(StateDict&, const Metadata&, int, bool) override { not_driven_here("load planning"); }
  LoadPlan create_local_plan() override { not_driven_here("load planning"); }
  Tensor resolve_tensor(const ReadItem& item) override {
    if (next_ >= targets_.size()) throw Error(ErrorCode::kInternal, "no destination was handed over for '" + item.fqn + "'");
    return targets_[next_++];
  }
  void load_value(const ReadItem&, const Bytes& bytes) override { values_.push_back(bytes); }
  void finish() override {}
  std::vector<Bytes>& values() { return values_; }

 private:
  std::vector<Tensor> targets_;
  size_t next_ = 0;
  std::vector<Bytes> values_;
};

std::vector<PathElement> to_path(nb::handle seq) {
  std::vector<PathElement> path;
  for (nb::handle e : seq) {
    PathElement p;
    if (nb::isinstance<nb::int_>(e) && !nb::isinstance<nb::bool_>(e)) {
      p.is_index = true;
      p.index = nb::cast<int64_t>(e);
    } else {
      p.key = nb::cast<std::string>(nb::str(e));
    }
    path.push_back(std::move(p));
  }
  return path;
}

nb::list path_list(const std::vector<PathElement>& path) {
  nb::list l;
  for (const PathElement& p : path) {
    if (p.is_index) {
      l.append(p.index);
    } else {
      l.append(nb::str(p.key.c_str(), p.key.size()));
    }
  }
  return l;
}

StorageLocation to_location(nb::handle t) {
  StorageLocation loc;
  loc.file = nb::cast<std::string>(t[0]);
  loc.byte_offset = nb::cast<uint64_t>(t[1]);
  loc.byte_length = nb::cast<uint64_t>(t[2]);
  loc.block_checksums = nb::cast<std::vector<uint64_t>>(t[3]);
  return loc;
}

nb::tuple location_tuple(const StorageLocation& loc) {
  nb::list checksums;
  for (uint64_t c : loc.block_checksums) checksums.append(c);
  return nb::make_tuple(loc.file, loc.byte_offset, loc.byte_length, nb::tuple(checksums));
}

// float8 has no DLPack code: Python hands such tensors over as uint8 views
// of the same bytes, which take their dtype back here.
Tensor with_dtype(Tensor t, DType dtype) {
  if (t.dtype() == DType::kUInt8 && dtype != DType::kUInt8 && dtype_size(dtype) == 1) {
    return Tensor::from_blob(t.data_ptr(), t.sizes(), dtype, t.strides());
  }
  return t;
}

class RankWriter {
 public:
  RankWriter(std::string path, bool overwrite, uint64_t block_size, size_t io_threads, bool direct_io)
      : writer_(std::move(path), [&] {
          FileSystemWriterOptions o;
          o.overwrite = overwrite;
          o.block_size = block_size;
          o.io_threads = io_threads;
          o.direct_io = direct_io;
          return o;
        }()) {}

  void set_up(int rank, int world_size, bool is_coordinator) { writer_.set_up(rank, world_size, is_coordinator); }

  void prepare() {
    nb::gil_scoped_release release;
    writer_.prepare();
  }

  // tensors: (fqn, offsets, sizes, global_shape, dtype, array) each;
  // values: (fqn, bytes) each. Returns one location tuple per item, tensors
  // first, in the order given; an empty chunk's has no file.
  nb::list write(nb::list tensors, nb::list values) {
    SavePlan plan;
    std::vector<Tensor> data;
    std::vector<Bytes> bytes;
    for (nb::handle t : tensors) {
      WriteItem item;
      item.fqn = nb::cast<std::string>(t[0]);
      item.type = WriteItemType::kTensor;
      item.offsets = to_shape(t[1]);
      item.sizes = to_shape(t[2]);
      item.global_shape = to_shape(t[3]);
      item.dtype = dtype_from_name(nb::cast<std::string>(t[4]));
      item.nbytes = static_cast<uint64_t>(shape_numel(item.sizes)) * dtype_size(item.dtype);
      data.push_back(with_dtype(tensor_from_array(nb::cast<ReadOnlyArray>(t[5])), item.dtype));
      plan.items.push_back(std::move(item));
    }
    for (nb::handle v : values) {
      WriteItem item;
      item.fqn = nb::cast<std::string>(v[0]);
      item.type = WriteItemType::kValue;
      item.value_kind = ValueKind::kBytes;
      nb::bytes b = nb::cast<nb::bytes>(v[1]);
      const auto* p = static_cast<const std::byte*>(static_cast<const void*>(b.c_str()));
      bytes.emplace_back(p, p + b.size());
      item.nbytes = b.size();
      plan.items.push_back(std::move(item));
    }
    ListSavePlanner planner(std::move(data), std::move(bytes));
    std::vector<WriteResult> results;
    {
      nb::gil_scoped_release release;
      results = writer_.write_data(plan, planner);
    }
    nb::list out;
    for (const WriteResult& r : results) out.append(location_tuple(r.location));
    return out;
  }

  // tensors: {fqn: (dtype, global_shape)}; values: [fqn] (stored bytes);
  // paths: {fqn: [str | int]} (a key without one is its own path);
  // results: per rank in rank order, [(fqn, is_tensor, offsets, sizes, location)].
  void finish(nb::dict tensors, nb::list values, nb::dict paths, nb::list results) {
    Metadata md;
    for (auto [key, t] : tensors) {
      TensorMeta& tm = md.tensors[nb::cast<std::string>(key)];
      tm.dtype = dtype_from_name(nb::cast<std::string>(t[0]));
      tm.global_shape = to_shape(t[1]);
    }
    for (nb::handle v : values) md.values[nb::cast<std::string>(v)].kind = ValueKind::kBytes;
    auto add_path = [&](const std::string& key) {
      nb::str k(key.c_str(), key.size());
      if (paths.contains(k)) {
        md.paths[key] = to_path(paths[k]);
      } else {
        md.paths[key] = {PathElement{false, key, 0}};
      }
    };
    for (const auto& [key, tm] : md.tensors) add_path(key);
    for (const auto& [key, vm] : md.values) add_path(key);
    std::vector<std::vector<WriteResult>> all;
    for (nb::handle rank_results : results) {
      auto& list = all.emplace_back();
      for (nb::handle r : rank_results) {
        WriteResult w;
        w.fqn = nb::cast<std::string>(r[0]);
        w.type = nb::cast<bool>(r[1]) ? WriteItemType::kTensor : WriteItemType::kValue;
        if (w.type == WriteItemType::kTensor) {
          w.offsets = to_shape(r[2]);
          w.sizes = to_shape(r[3]);
        }
        w.location = to_location(r[4]);
        list.push_back(std::move(w));
      }
    }
    nb::gil_scoped_release release;
    writer_.finish(std::move(md), all);
  }

  void abort() { writer_.abort(); }
  const std::string& staging_dir() const { return writer_.staging_dir(); }

 private:
  FileSystemWriter writer_;
};

class RankReader {
 public:
  RankReader(std::string path, int rank, size_t io_threads, bool direct_io)
      : reader_(std::move(path), [&] {
          FileSystemReaderOptions o;
          o.io_threads = io_threads;
          o.direct_io = direct_io;
          o.read_once = false;  // no dcpp communicator here: each rank reads its own blocks
          return o;
        }()) {
    reader_.set_up(rank, 1, rank == 0);
  }

  // {"tensors": {fqn: (dtype, global_shape, [(offsets, sizes)])},
  //  "values": {fqn: kind}, "paths": {fqn: [str | int]}, "world_size", "block_size"}
  nb::dict metadata() {
    {
      nb::gil_scoped_release release;
      if (!metadata_) metadata_ = reader_.read_metadata();
    }
    const Metadata& md = *metadata_;
    nb::dict tensors, values, paths;
    for (const auto& [key, tm] : md.tensors) {
      nb::list chunks;
      for (const ChunkMeta& c : tm.chunks) chunks.append(nb::make_tuple(shape_list(c.offsets), shape_list(c.sizes)));
      tensors[nb::str(key.c_str(), key.size())] =
          nb::make_tuple(std::string(dtype_name(tm.dtype)), shape_list(tm.global_shape), chunks);
    }
    for (const auto& [key, vm] : md.values) {
      values[nb::str(key.c_str(), key.size())] = std::string(value_kind_name(vm.kind));
    }
    for (const auto& [key, path] : md.paths) paths[nb::str(key.c_str(), key.size())] = path_list(path);
    nb::dict out;
    out["tensors"] = tensors;
    out["values"] = values;
    out["paths"] = paths;
    out["world_size"] = md.world_size;
    out["block_size"] = md.block_size;
    return out;
  }

  // items: (fqn, chunk_index, storage_offsets, lengths[, target dtype]) each;
  // targets: one writable array per item, of the box's shape (any strides
  // and dtype; the dtype names a float8 target handed over as uint8).
  void read(nb::list items, nb::list targets) {
    if (items.size() != targets.size()) {
      throw Error(ErrorCode::kInvalidArgument, std::to_string(items.size()) + " read items but " +
                                                   std::to_string(targets.size()) + " destinations");
    }
    LoadPlan plan;
    std::vector<Tensor> dests;
    for (size_t i = 0; i < items.size(); ++i) {
      nb::handle t = items[i];
      ReadItem item;
      item.fqn = nb::cast<std::string>(t[0]);
      item.type = ReadItemType::kTensor;
      item.chunk_index = nb::cast<size_t>(t[1]);
      item.storage_offsets = to_shape(t[2]);
      item.lengths = to_shape(t[3]);
      item.dest_offsets.assign(item.lengths.size(), 0);
      Tensor dest = tensor_from_array(nb::cast<AnyArray>(targets[i]));
      if (nb::len(t) > 4 && !t[4].is_none()) dest = with_dtype(dest, dtype_from_name(nb::cast<std::string>(t[4])));
      if (dest.sizes() != item.lengths) {
        throw Error(ErrorCode::kInvalidArgument, "destination of '" + item.fqn + "' has shape " +
                                                     shape_to_string(dest.sizes()) + ", the read item's box is " +
                                                     shape_to_string(item.lengths));
      }
      dests.push_back(std::move(dest));
      plan.items.push_back(std::move(item));
    }
    ListLoadPlanner planner(std::move(dests));
    nb::gil_scoped_release release;
    reader_.read_data(plan, planner);
  }

  // The stored values of `keys`: bytes as stored for kind "bytes", the
  // decoded int, float, bool or str otherwise.
  nb::list read_values(std::vector<std::string> keys) {
    LoadPlan plan;
    for (const std::string& key : keys) {
      ReadItem item;
      item.fqn = key;
      item.type = ReadItemType::kValue;
      plan.items.push_back(std::move(item));
    }
    ListLoadPlanner planner({});
    {
      nb::gil_scoped_release release;
      if (!metadata_) metadata_ = reader_.read_metadata();
      reader_.read_data(plan, planner);
    }
    nb::list out;
    for (size_t i = 0; i < keys.size(); ++i) {
      const Bytes& b = planner.values().at(i);
      const ValueKind kind = metadata_->values.at(keys[i]).kind;
      if (kind == ValueKind::kBytes) {
        out.append(nb::bytes(reinterpret_cast<const char*>(b.data()), b.size()));
      } else {
        out.append(value_to_python(decode_value(kind, b, keys[i]), keys[i]));
      }
    }
    return out;
  }

 private:
  FileSystemReader reader_;
  std::optional<Metadata> metadata_;
};

}  // namespace

void bind_rank_storage(nb::module_& m) {
  nb::class_<RankWriter>(m, "RankWriter",
                         "One rank's native checkpoint writer (FileSystemWriter) for a save planned by the caller.")
      .def(nb::init<std::string, bool, uint64_t, size_t, bool>(), "path"_a, "overwrite"_a = true,
           "block_size"_a = kDefaultBlockSize, "io_threads"_a = 2, "direct_io"_a = true)
      .def("set_up", &RankWriter::set_up, "rank"_a, "world_size"_a, "is_coordinator"_a)
      .def("prepare", &RankWriter::prepare, "Coordinator: creates the staging directory every rank writes into.")
      .def("write", &RankWriter::write, "tensors"_a, "values"_a,
           "Writes this rank's data file: tensors as (fqn, offsets, sizes, global_shape, dtype, array),\n"
           "values as (fqn, bytes). Returns (file, byte_offset, byte_length, block_checksums) per item,\n"
           "tensors first.")
      .def("finish", &RankWriter::finish, "tensors"_a, "values"_a, "paths"_a, "results"_a,
           "Coordinator: writes the metadata from every rank's results and commits atomically.")
      .def("abort", &RankWriter::abort, "Removes what this save wrote (never a complete checkpoint).")
      .def_prop_ro("staging_dir", &RankWriter::staging_dir);
  nb::class_<RankReader>(m, "RankReader",
                         "One rank's native checkpoint reader (FileSystemReader) for a load planned by the caller.")
      .def(nb::init<std::string, int, size_t, bool>(), "path"_a, "rank"_a = 0, "io_threads"_a = 4,
           "direct_io"_a = true)
      .def("metadata", &RankReader::metadata, "The checkpoint's metadata as plain Python objects.")
      .def("read", &RankReader::read, "items"_a, "targets"_a,
           "Reads boxes (fqn, chunk_index, storage_offsets, lengths[, dtype]) into the given arrays, in place,\n"
           "verifying every checksum block touched.")
      .def("read_values", &RankReader::read_values, "keys"_a);
}

}  // namespace dcpp::python
