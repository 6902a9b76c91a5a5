// Tiny planners that drive FileSystemWriter/Reader directly, standing in
// for the real save()/load() so the storage layer is tested on its own:
// several simulated ranks, each with its own writer, run one after another.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/planner.h"
#include "dcpp/tensor.h"

namespace dcpp::testing {

// One rank's items: local chunks (views of the global tensor) and values.
class TestSavePlanner : public SavePlanner {
 public:
  void add_chunk(const std::string& fqn, const Tensor& local, const Shape& offsets, const Shape& global_shape) {
    WriteItem item;
    item.fqn = fqn;
    item.type = WriteItemType::kTensor;
    item.dtype = local.dtype();
    item.global_shape = global_shape;
    item.offsets = offsets;
    item.sizes = local.sizes();
    item.nbytes = local.nbytes();
    plan_.items.push_back(item);
    tensors_[{fqn, offsets}] = local;
  }
  void add_value(const std::string& fqn, ValueKind kind, Bytes bytes) {
    WriteItem item;
    item.fqn = fqn;
    item.type = WriteItemType::kValue;
    item.value_kind = kind;
    item.nbytes = bytes.size();
    plan_.items.push_back(item);
    values_[fqn] = std::move(bytes);
  }

  const SavePlan& plan() const { return plan_; }

  void set_up(const FlatStateDict&, int, bool) override {}
  SavePlan create_local_plan() override { return plan_; }
  std::vector<SavePlan> create_global_plan(std::vector<SavePlan> local_plans) override { return local_plans; }
  Tensor resolve_tensor(const WriteItem& item) override { return tensors_.at({item.fqn, item.offsets}); }
  Bytes resolve_value(const WriteItem& item) override { return values_.at(item.fqn); }
  std::map<std::string, std::vector<PathElement>> paths() const override { return {}; }

 private:
  SavePlan plan_;
  std::map<std::pair<std::string, Shape>, Tensor> tensors_;
  std::map<std::string, Bytes> values_;
};

// The metadata save() would build: keys, dtypes, shapes, value kinds, and
// a path of one dict key per flat key (chunks are filled by finish()).
inline Metadata metadata_for(const std::vector<TestSavePlanner>& ranks) {
  Metadata md;
  for (const auto& r : ranks) {
    for (const auto& item : r.plan().items) {
      if (item.type == WriteItemType::kTensor) {
        auto& t = md.tensors[item.fqn];
        t.dtype = item.dtype;
        t.global_shape = item.global_shape;
      } else {
        md.values[item.fqn].kind = item.value_kind;
      }
      md.paths[item.fqn] = {PathElement{false, item.fqn, 0}};
    }
  }
  return md;
}

// Runs the save protocol over simulated ranks (rank 0 coordinates). On a
// failure every writer aborts, as save() does, and the error propagates.
inline void run_save(const std::string& path, std::vector<TestSavePlanner>& ranks,
                     const FileSystemWriterOptions& options = {}) {
  const int world = static_cast<int>(ranks.size());
  std::vector<FileSystemWriter> writers;
  writers.reserve(world);
  for (int r = 0; r < world; ++r) {
    writers.emplace_back(path, options);
    writers.back().set_up(r, world, r == 0);
  }
  try {
    writers[0].prepare();
    std::vector<std::vector<WriteResult>> results(world);
    for (int r = 0; r < world; ++r) results[r] = writers[r].write_data(ranks[r].plan(), ranks[r]);
    writers[0].finish(metadata_for(ranks), results);
  } catch (...) {
    for (auto& w : writers) w.abort();
    throw;
  }
}

// One rank's wanted tensors: a local tensor holding the box
// [offsets, offsets + local.sizes()) of each global tensor.
class TestLoadPlanner : public LoadPlanner {
 public:
  void want(const std::string& fqn, const Tensor& local, const Shape& offsets) { wants_[fqn] = {local, offsets}; }
  void want_value(const std::string& fqn) { value_wants_.push_back(fqn); }

  void set_up(StateDict&, const Metadata& metadata, int, bool) override { metadata_ = &metadata; }
  void set_metadata(const Metadata& metadata) { metadata_ = &metadata; }

  LoadPlan create_local_plan() override {
    LoadPlan plan;
    for (const auto& [fqn, want] : wants_) {
      const TensorMeta& t = metadata_->tensors.at(fqn);
      const Shape& dsz = want.first.sizes();
      const Shape& doff = want.second;
      for (size_t ci = 0; ci < t.chunks.size(); ++ci) {
        const ChunkMeta& c = t.chunks[ci];
        ReadItem item;
        item.fqn = fqn;
        item.chunk_index = ci;
        bool empty = false;
        for (size_t d = 0; d < dsz.size(); ++d) {
          int64_t lo = std::max(c.offsets[d], doff[d]);
          int64_t hi = std::min(c.offsets[d] + c.sizes[d], doff[d] + dsz[d]);
          if (lo >= hi) {
            empty = true;
            break;
          }
          item.storage_offsets.push_back(lo - c.offsets[d]);
          item.dest_offsets.push_back(lo - doff[d]);
          item.lengths.push_back(hi - lo);
        }
        if (!empty) plan.items.push_back(item);
      }
    }
    for (const auto& fqn : value_wants_) {
      ReadItem item;
      item.fqn = fqn;
      item.type = ReadItemType::kValue;
      plan.items.push_back(item);
    }
    return plan;
  }
  Tensor resolve_tensor(const ReadItem& item) override {
    Tensor t = wants_.at(item.fqn).first;
    for (size_t d = 0; d < item.lengths.size(); ++d) {
      t = t.narrow(static_cast<int64_t>(d), item.dest_offsets[d], item.lengths[d]);
    }
    return t;
  }
  void load_value(const ReadItem& item, const Bytes& bytes) override { values[item.fqn] = bytes; }
  void finish() override {}

  std::map<std::string, Bytes> values;

 private:
  const Metadata* metadata_ = nullptr;
  std::map<std::string, std::pair<Tensor, Shape>> wants_;
  std::vector<std::string> value_wants_;
};

// Reads with `planner` from the checkpoint at `path` (metadata first).
inline Metadata run_load(const std::string& path, TestLoadPlanner& planner, FileSystemReaderOptions options = {},
                         int rank = 0) {
  FileSystemReader reader(path, options);
  reader.set_up(rank, 1, rank == 0);
  Metadata md = reader.read_metadata();
  planner.set_metadata(md);
  reader.read_data(planner.create_local_plan(), planner);
  return md;
}

}  // namespace dcpp::testing
