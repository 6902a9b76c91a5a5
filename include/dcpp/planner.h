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
#include <optional>
#include <string>
#include <vector>

#include "dcpp/metadata.h"
#include "dcpp/state_dict.h"
#include "dcpp/tensor.h"

namespace dcpp {

// A state dict flattened to dotted keys. Values are leaves only: Tensor,
// DTensor, int64, double, bool, string or Bytes (Stateful objects are asked
// for their state first; dicts and lists are descended, a list element's
// index being its path element). Empty dicts and lists leave no key; a null
// value is an error (it has no stored form).
struct FlatStateDict {
  std::vector<std::string> keys;                 // insertion order
  std::map<std::string, StateValue> values;      // by flat key
  std::map<std::string, std::vector<PathElement>> paths;  // flat key → nesting

  // Removes a key (e.g. in a SavePlanner subclass that drops keys); false if absent.
  bool erase(const std::string& key);
  // Renames a key, keeping its position and path; throws Error(kInvalidArgument)
  // if `from` is absent or `to` already present.
  void rename(const std::string& from, const std::string& to);
};
// Flattens with '.' between levels (PyTorch's flatten_state_dict). Throws
// Error(kInvalidArgument) when two paths give the same dotted key (e.g. a key
// "a.b" beside {"a": {"b": ...}}) or a value is null.
FlatStateDict flatten_state_dict(const StateDict& state_dict);
// The dotted key of a path ("optim.param_groups.0.lr").
std::string flat_key(const std::vector<PathElement>& path);

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
  // Tensors this rank holds that have no bytes to write here (an empty shard,
  // a zero-size tensor): they reach the metadata with dtype and global shape.
  // Final plans keep each rank's own, for formats that know a tensor only
  // through its stored chunks (a zero-size tensor has none with bytes).
  std::vector<WriteItem> empty_chunks;
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
  // Compare content hashes (XXH3-64 of the chunk bytes) of replicated copies
  // across ranks and fail on divergence; off, dedup keeps one copy silently.
  bool check_replicated = false;
};

// The interface save() drives. DefaultSavePlanner is PyTorch's behaviour;
// subclass it to rename or filter keys (override set_up and edit the flat
// state dict before handing it on).
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
  // One item per non-empty local chunk (a DTensor's local piece at its global
  // offset; a plain Tensor whole, at offset 0, i.e. replicated on every rank)
  // and per value. Throws Error(kInvalidArgument) naming the key for a
  // Partial DTensor or a tensor on meta.
  SavePlan create_local_plan() override;
  // Dedup (fewest bytes so far wins, deterministic), optional replica
  // comparison, then per tensor: one dtype and global shape on all ranks,
  // chunks in bounds, no overlap, full coverage. Throws one Error naming the
  // key (and ranks) at the first problem.
  std::vector<SavePlan> create_global_plan(std::vector<SavePlan> local_plans) override;
  Tensor resolve_tensor(const WriteItem& item) override;
  Bytes resolve_value(const WriteItem& item) override;
  std::map<std::string, std::vector<PathElement>> paths() const override { return state_dict_.paths; }

  const SavePlannerOptions& options() const { return options_; }
  void set_options(const SavePlannerOptions& options) { options_ = options; }

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
  // Keys the caller asks for that the checkpoint lacks are left untouched
  // instead of failing the load.
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
  explicit DefaultLoadPlanner(LoadPlannerOptions options = {});
  ~DefaultLoadPlanner() override;
  void set_up(StateDict& state_dict, const Metadata& metadata, int rank, bool is_coordinator) override;
  // For each local chunk of each requested tensor and each saved chunk that
  // overlaps it, one item (the overlap box); one item per requested value.
  LoadPlan create_local_plan() override;
  Tensor resolve_tensor(const ReadItem& item) override;
  void load_value(const ReadItem& item, const Bytes& bytes) override;
  void finish() override;

  const LoadPlannerOptions& options() const { return options_; }
  void set_options(const LoadPlannerOptions& options) { options_ = options; }

 protected:
  // The checkpoint key that loads the caller's flat key `key`, or nullopt to
  // leave that key untouched. Identity by default; override to strip or add
  // a prefix, or to filter. Two caller keys may not map to one checkpoint key.
  virtual std::optional<std::string> checkpoint_key(const std::string& key) const { return key; }

  LoadPlannerOptions options_;
  FlatStateDict flat_;                  // the caller's state dict, flattened at set_up
  const Metadata* metadata_ = nullptr;  // valid from set_up to finish
  int rank_ = 0;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Encoding of non-tensor values (also used by storage formats that keep
// values): int64 and double little-endian 8 bytes, bool 1 byte, string UTF-8,
// bytes raw. value_kind throws Error(kInvalidArgument) for a non-value.
ValueKind value_kind(const StateValue& value);
Bytes encode_value(const StateValue& value);
// Throws Error(kCorrupt) naming `key` when the byte count does not fit the kind.
StateValue decode_value(ValueKind kind, const Bytes& bytes, const std::string& key);

}  // namespace dcpp
