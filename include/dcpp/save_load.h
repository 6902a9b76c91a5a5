// save() and load() over a StorageWriter / StorageReader: PyTorch's
// torch.distributed.checkpoint in C++, independent of any file format (the
// path conveniences that pick the native format live one layer up, in
// dcpp/checkpoint.h).
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
// Loads into `state_dict` in place through `reader`. Collective.
void load(StateDict& state_dict, StorageReader& reader, const LoadOptions& options = {});
// The communicator save/load would use for `state_dict` when none is given:
// the DTensors' common world communicator, or null (single process). Throws
// Error(kInvalidArgument) naming two keys whose meshes use different ones.
CommPtr infer_communicator(const StateDict& state_dict);

}  // namespace dcpp
