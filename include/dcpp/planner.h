// Save and load planning: which rank writes which bytes, which saved bytes
// each rank reads into which part of its tensors (PyTorch DCP's planners).
//
// save(): every rank's SavePlanner makes a local plan (one WriteItem per
// local chunk and per non-tensor value); the coordinator's planner merges all
// local plans into final per-rank plans (dedup of items held by several
// ranks, validation of bounds, overlap and coverage); each rank's writer then
// asks its planner for each item's data. load(): each rank's LoadPlanner
// validates the caller's state dict against the metadata and makes ReadItems
// from the overlap boxes; the reader asks it for each item's destination.
// Planners know nothing of file formats. A planner is used by one rank for
// one save or load; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dcpp/metadata.h"
#include "dcpp/state_dict.h"
#include "dcpp/tensor.h"

namespace dcpp {

// A state dict flattened to dotted keys. Values are leaves only: Tensor,
// DTensor, int64, double, bool, string or Bytes (Stateful objects are asked
// for their state first; dicts and lists are descended).
struct FlatStateDict {
  std::vector<std::string> keys;                 // insertion order
  std::map<std::string, StateValue> values;      // by flat key
  std::map<std::string, std::vector<PathElement>> paths;  // flat key → nesting
};
// Flattens with '.' between levels (PyTorch's flatten_state_dict).
FlatStateDict flatten_state_dict(const StateDict& state_dict);

enum class WriteItemType : uint8_t { kTensor = 0, kValue = 1 };

struct WriteItem {
  std::string fqn;
  WriteItemType type = WriteItemType::kTensor;
  // Tensors: the chunk this item writes.
  DType dtype = DType::kFloat32;
  Shape global_shape;
  Shape offsets;
  Shape sizes;
  // Values: kind and encoded size.
  ValueKind value_kind = ValueKind::kBytes;
  uint64_t nbytes = 0;  // bytes this item writes (tensor chunk or encoded value)
  // Optional content checksum, filled when replicated copies are compared.
  uint64_t content_hash = 0;
};

struct SavePlan {
  std::vector<WriteItem> items;
};

// What a writer reports for each item it wrote.
struct WriteResult {
  std::string fqn;
  WriteItemType type = WriteItemType::kTensor;
  Shape offsets;  // tensor chunks only
  Shape sizes;
  StorageLocation location;
};

struct SavePlannerOptions {
  // Compare content hashes of replicated copies across ranks; fail on divergence.
  bool check_replicated = false;
};

// The interface save() drives. DefaultSavePlanner is PyTorch's behaviour;
// subclass it to rename or filter keys.
class SavePlanner {
 public:
  virtual ~SavePlanner() = default;
  virtual void set_up(const FlatStateDict& state_dict, int rank, bool is_coordinator) = 0;
  virtual SavePlan create_local_plan() = 0;
  // Coordinator only: all ranks' local plans in rank order → final plans.
  virtual std::vector<SavePlan> create_global_plan(std::vector<SavePlan> local_plans) = 0;
  virtual SavePlan finish_plan(SavePlan final_plan) { return final_plan; }
  // The data of one item of this rank's final plan: a tensor view (the local
  // chunk) for tensors; encoded bytes for values.
  virtual Tensor resolve_tensor(const WriteItem& item) = 0;
  virtual Bytes resolve_value(const WriteItem& item) = 0;
  // The nesting to record in the metadata (flat key → path).
  virtual std::map<std::string, std::vector<PathElement>> paths() const = 0;
};

class DefaultSavePlanner : public SavePlanner {
 public:
  explicit DefaultSavePlanner(SavePlannerOptions options = {}) : options_(options) {}
  void set_up(const FlatStateDict& state_dict, int rank, bool is_coordinator) override;
  SavePlan create_local_plan() override;
  std::vector<SavePlan> create_global_plan(std::vector<SavePlan> local_plans) override;
  Tensor resolve_tensor(const WriteItem& item) override;
  Bytes resolve_value(const WriteItem& item) override;
  std::map<std::string, std::vector<PathElement>> paths() const override { return state_dict_.paths; }

 protected:
  SavePlannerOptions options_;
  FlatStateDict state_dict_;
  int rank_ = 0;
  bool is_coordinator_ = false;
};

enum class ReadItemType : uint8_t { kTensor = 0, kValue = 1 };

struct ReadItem {
  std::string fqn;  // key in the checkpoint
  ReadItemType type = ReadItemType::kTensor;
  size_t chunk_index = 0;  // which ChunkMeta of metadata.tensors[fqn]
  Shape storage_offsets;   // box start inside the saved chunk
  Shape dest_offsets;      // box start inside the destination (local) tensor
  Shape lengths;           // box size
};

struct LoadPlan {
  std::vector<ReadItem> items;
};

struct LoadPlannerOptions {
  bool allow_partial_load = false;
};

// The interface load() drives. DefaultLoadPlanner is PyTorch's behaviour;
// subclass it to rename or filter keys (e.g. load only `model.*`).
class LoadPlanner {
 public:
  virtual ~LoadPlanner() = default;
  // Validates every requested key (missing, shape mismatch, unsupported
  // conversion) and throws one Error listing every offending key, before any
  // caller tensor is touched. Allocates tensors on meta.
  virtual void set_up(StateDict& state_dict, const Metadata& metadata, int rank, bool is_coordinator) = 0;
  virtual LoadPlan create_local_plan() = 0;
  // Where a tensor read item's bytes go: a view of the destination tensor of
  // the box's size (any dtype; the reader converts).
  virtual Tensor resolve_tensor(const ReadItem& item) = 0;
  // A value read item's stored bytes.
  virtual void load_value(const ReadItem& item, const Bytes& bytes) = 0;
  // After all reads: writes values and meta replacements back into the
  // caller's nested dict and hands Stateful objects their state.
  virtual void finish() = 0;
};

class DefaultLoadPlanner : public LoadPlanner {
 public:
  explicit DefaultLoadPlanner(LoadPlannerOptions options = {}) : options_(options) {}
  void set_up(StateDict& state_dict, const Metadata& metadata, int rank, bool is_coordinator) override;
  LoadPlan create_local_plan() override;
  Tensor resolve_tensor(const ReadItem& item) override;
  void load_value(const ReadItem& item, const Bytes& bytes) override;
  void finish() override;

 protected:
  LoadPlannerOptions options_;
  StateDict state_dict_;
  FlatStateDict flat_;
  const Metadata* metadata_ = nullptr;
  int rank_ = 0;
};

}  // namespace dcpp
