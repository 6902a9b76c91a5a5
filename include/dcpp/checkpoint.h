// save() and load(): PyTorch's torch.distributed.checkpoint in C++, and a
// CheckpointReader for serving code that has no mesh or communicator.
//
// save() and load() are collective over one communicator: every rank calls
// them with its own state dict (its local shards) and its own writer or
// reader object. The communicator is SaveOptions::comm / LoadOptions::comm,
// else the one every DTensor of the state dict is built on, else (no DTensor,
// no comm) the call runs as a single process. Planning follows planner.h, the
// storage protocol storage.h. Errors are collective: each phase ends with an
// exchange of every rank's status, so when any rank fails, every rank throws
// a dcpp::Error naming the failing rank(s) and the cause, and none hangs; a
// failed save calls abort() on every rank's writer, so the target keeps its
// previous complete checkpoint. load() validates every requested key before
// any byte of the caller's tensors is written, and loads in place.
// The caller owns the state dict, writer, reader and planner; they must
// outlive the call. Thread-safety: one call per rank (thread) at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/fs_storage.h"
#include "dcpp/metadata.h"
#include "dcpp/planner.h"
#include "dcpp/state_dict.h"
#include "dcpp/storage.h"

namespace dcpp {

struct SaveOptions {
  CommPtr comm = nullptr;                          // null: from the DTensors, else single process
  std::shared_ptr<SavePlanner> planner = nullptr;  // null: DefaultSavePlanner
  // Compare replicated copies' checksums across ranks (applies to a
  // DefaultSavePlanner, given or not).
  bool check_replicated = false;
  int coordinator_rank = 0;
};

struct LoadOptions {
  CommPtr comm = nullptr;                          // null: from the DTensors, else single process
  std::shared_ptr<LoadPlanner> planner = nullptr;  // null: DefaultLoadPlanner
  // Requested keys absent from the checkpoint are left untouched instead of
  // failing (applies to a DefaultLoadPlanner, given or not).
  bool allow_partial_load = false;
  int coordinator_rank = 0;
};

// Saves `state_dict` through `writer`. Collective.
void save(const StateDict& state_dict, StorageWriter& writer, const SaveOptions& options = {});
// Saves into the native format at `path` (a directory; replaced atomically
// if it holds a checkpoint). Collective; every rank passes the same path.
// (Inline, like the other path conveniences below, so that the native
// format links from the caller's object: the storage layer sits above this one.)
inline void save(const StateDict& state_dict, const std::string& path, const SaveOptions& options = {}) {
  FileSystemWriter writer(path);
  save(state_dict, writer, options);
}

// Loads into `state_dict` in place through `reader`. Collective.
void load(StateDict& state_dict, StorageReader& reader, const LoadOptions& options = {});
// Loads from the native checkpoint at `path`. Collective.
inline void load(StateDict& state_dict, const std::string& path, const LoadOptions& options = {}) {
  FileSystemReader reader(path);
  load(state_dict, reader, options);
}

// The communicator save/load would use for `state_dict` when none is given:
// the DTensors' common world communicator, or null (single process). Throws
// Error(kInvalidArgument) naming two keys whose meshes use different ones.
CommPtr infer_communicator(const StateDict& state_dict);

// Read access to one checkpoint without a communicator (serving, tools):
// keys with dtype and global shape, values, whole tensors or any box of one.
// A box read fetches (and verifies) only the checksum blocks that hold it.
// Not thread-safe: one reader per thread.
class CheckpointReader {
 public:
  struct TensorInfo {
    DType dtype;
    Shape shape;
  };

  // Opens the native checkpoint at `path` (reads and verifies its metadata).
  explicit CheckpointReader(const std::string& path);
  // Any storage format.
  explicit CheckpointReader(std::unique_ptr<StorageReader> reader);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const Metadata& metadata() const { return metadata_; }
  // Every key (tensors and values), sorted.
  std::vector<std::string> keys() const;
  std::vector<std::string> tensor_keys() const;
  std::vector<std::string> value_keys() const;
  bool contains(const std::string& key) const { return metadata_.contains(key); }
  bool is_tensor(const std::string& key) const { return metadata_.tensors.count(key) != 0; }
  // Throws Error(kNotFound) naming the key (and kInvalidArgument for a value).
  TensorInfo tensor_info(const std::string& key) const;

  // A non-tensor value (int64, double, bool, string or Bytes).
  StateValue value(const std::string& key);
  // The whole tensor, in its saved dtype or converted to `dtype`.
  Tensor read(const std::string& key, std::optional<DType> dtype = std::nullopt);
  // The box [offsets, offsets + sizes) of the tensor.
  Tensor read(const std::string& key, const Shape& offsets, const Shape& sizes,
              std::optional<DType> dtype = std::nullopt);
  // Reads the box starting at `offsets` with `out`'s shape into `out` (any
  // dtype, any strides: a caller buffer wrapped with Tensor::from_blob works).
  void read_into(const std::string& key, const Shape& offsets, Tensor& out);

 private:
  std::unique_ptr<StorageReader> reader_;
  Metadata metadata_;
};

inline CheckpointReader::CheckpointReader(const std::string& path)
    : CheckpointReader(std::make_unique<FileSystemReader>(path)) {}

}  // namespace dcpp
