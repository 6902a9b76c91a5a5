// Shared pieces of the reliability tests: the seed's model in two
// generations whose full values are computed without dcpp's checkpoint code,
// a multi-rank save that records every rank's outcome, and an inspection
// that says what a checkpoint path holds (old, new, incomplete, or wrong).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/state_dict.h"
#include "dcpp/tensor.h"

namespace dcpp::testing {

// The seed's model (MLPModule; net1 ColwiseParallel, net2 RowwiseParallel).
// old_full: the parameters of an MLPModule built on one rank without tensor
// parallelism; new_full: old * -1.5 + 0.25, element by element in float64.
struct SeedStates {
  std::vector<std::string> keys;
  std::map<std::string, Tensor> old_full;
  std::map<std::string, Tensor> new_full;
};
const SeedStates& seed_states();

enum class Generation { kOld, kNew };

// This rank's state dict of the parallelized seed model holding `which`
// values (DTensors over a 1-d mesh on `comm`).
StateDict seed_state_dict(const CommPtr& comm, Generation which);

// `full` narrowed to [offsets, offsets + sizes).
Tensor box_of(const Tensor& full, const Shape& offsets, const Shape& sizes);
// Byte-exact comparison of two tensors of the same dtype and shape.
bool same_bytes(const Tensor& a, const Tensor& b);

struct RankOutcome {
  bool threw = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// Saves the seed model's `which` generation to `path` on `world` thread
// ranks, rank r writing through fs_for_rank(r) (null: the default file
// system). Exceptions are caught per rank and returned, never rethrown.
std::vector<RankOutcome> save_seed(const std::string& path, int world, Generation which,
                                   const std::function<FileSystemPtr(int)>& fs_for_rank,
                                   FileSystemWriterOptions base = {});

enum class Found {
  kOld,         // loads, every byte equal to the old generation
  kNew,         // loads, every byte equal to the new generation
  kMissing,     // nothing at the path
  kIncomplete,  // dcpp reports the directory as an incomplete (or empty) checkpoint
  kLoadError,   // claims to be complete but fails to load with a dcpp::Error
  kMixed,       // loads, some keys old and some new: never acceptable
  kWrong,       // loads data equal to neither: never acceptable
};
std::string_view found_name(Found found);

struct Inspection {
  Found found = Found::kWrong;
  std::string detail;  // the load error, or which key held what
};

// What `path` holds: its state by checkpoint_state(), then a load() on
// `world` thread ranks into sentinel-filled DTensors, and a whole-tensor read
// of every key through CheckpointReader; both must agree with one
// generation byte for byte. Reads through the real file system.
Inspection inspect_seed_checkpoint(const std::string& path, int world);

// Counts of outcomes, printed as one line "<what>: old N, new N, ...".
struct OutcomeCounts {
  std::map<Found, int> by_found;
  int total = 0;
  void add(Found f) {
    ++by_found[f];
    ++total;
  }
  int count(Found f) const {
    auto it = by_found.find(f);
    return it == by_found.end() ? 0 : it->second;
  }
  std::string summary() const;
};

}  // namespace dcpp::testing
