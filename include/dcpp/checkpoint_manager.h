// CheckpointManager: the checkpoints of one training run, one directory per
// step under a root ("<root>/step-000100/", six digits, wider past 999999),
// each a native dcpp checkpoint written by save() through FileSystemWriter.
//
// It answers "which step do I resume from" (the latest COMPLETE step: a step
// whose save did not finish is skipped), prunes old steps after each
// successful save (keep the last k, and optionally every n-th step forever),
// refuses to start a save when the file system lacks the space the previous
// checkpoint took, and cleans up what crashed saves leave behind (incomplete
// step directories, ".step-000100.dcpp-staging" directories). It never
// removes anything that is not dcpp's: a directory checkpoint_state() calls
// kForeign is left alone, as is every name that is not a step or staging name.
//
// Collective use: when several ranks call it (a communicator in the options,
// or inferred from the state dict's DTensors as save() does), every method
// must be called by every rank in the same order. Only the coordinator rank
// inspects or changes the root directory; what it decides (the step to load,
// a refusal, the listing, an error) is broadcast, so every rank returns the
// same answer or throws the same Error and none hangs. Without a
// communicator each call runs as a single process.
//
// Ownership: the manager holds its options (and through them a shared
// FileSystem, the injected seam, PosixFileSystem by default); the caller owns
// the state dicts. Thread-safety: each rank (thread) uses its own manager
// object (they may share root and file system); one object serves one thread
// at a time. Concurrent saves and cleanup() on one root from unrelated jobs
// are not coordinated: cleanup() would remove a running save's staging directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/comm.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/state_dict.h"

namespace dcpp {

// Which complete steps survive a save. A step is kept if it is among the
// `keep_last` highest complete steps, or if `keep_every` > 0 and
// step % keep_every == 0, or if it is the step just saved. Only complete steps
// are pruned; incomplete ones are cleanup()'s business.
struct RetentionPolicy {
  size_t keep_last = 0;    // 0: keep every step (no pruning)
  int64_t keep_every = 0;  // 0: no permanent steps
};

struct CheckpointManagerOptions {
  FileSystemPtr filesystem;  // null = file_system_for_path(root): S3 for s3://, else default_file_system()
  RetentionPolicy retention;
  // Refuse a save when FileSystem::free_space(root) is below the byte count
  // of the latest complete step (its data plus its metadata file).
  bool check_free_space = true;
  uint64_t block_size = kDefaultBlockSize;  // checksum block size of new checkpoints
  // Store blocks encoded where smaller (FileSystemWriterOptions::compress).
  bool compress = false;
  // Incremental saves: every step records its chunks' XXH3-128, and a chunk
  // whose bytes equal the same chunk of the latest other complete step is
  // not written again; the new step refers to the data file that holds it
  // (docs/format.md, "References"). Retention never removes a step that a
  // kept step refers to, and saving again over a step that another step
  // refers to is refused (Error(kInvalidArgument)).
  bool incremental = false;
  // The communicator of collective calls. Null: save/load use
  // SaveOptions::comm / LoadOptions::comm, else the state dict's DTensors'
  // (infer_communicator), else single process; the other methods run as a
  // single process.
  CommPtr comm;
  int coordinator_rank = 0;  // used when the options' comm is given
};

// One step directory under the root, as list_steps() finds it.
struct StepInfo {
  int64_t step = 0;
  std::string path;
  CheckpointState state = CheckpointState::kIncomplete;  // kComplete, kIncomplete, kEmpty or kForeign
  uint64_t bytes = 0;          // sum of the sizes of the files in the directory
  int64_t mtime_seconds = 0;   // last modification of the directory (Unix time), 0 if unknown
  bool complete() const { return state == CheckpointState::kComplete; }
};

// What cleanup() did, the same on every rank.
struct CleanupReport {
  std::vector<std::string> removed;   // paths removed
  std::vector<std::string> restored;  // ".dcpp-old" directories renamed back to their step
  std::vector<std::string> skipped;   // step-like names left alone because they are not dcpp's
};

// "step-000100" (six digits, zero-padded; more digits when needed).
std::string step_dir_name(int64_t step);
// The step of a canonical step directory name ("step-000100" → 100), else nullopt
// ("step-100", "step-0000100", "step-12x" and negative steps are not step names).
std::optional<int64_t> parse_step_dir_name(const std::string& name);

class CheckpointManager {
 public:
  explicit CheckpointManager(std::string root, CheckpointManagerOptions options = {});

  const std::string& root() const { return root_; }
  const CheckpointManagerOptions& options() const { return options_; }
  std::string step_path(int64_t step) const;

  // Saves `state_dict` as step `step` (a complete step of that number is
  // replaced atomically), then applies the retention policy. Collective.
  // Before anything is written: Error(kInvalidArgument) for a negative step
  // or a step path holding something that is not dcpp's; Error(kIo) when the
  // free space is below what the latest complete step needed. A save that
  // succeeded but whose pruning failed throws Error(kIo) saying so.
  void save(int64_t step, const StateDict& state_dict, SaveOptions options = {});

  // The highest complete step, or nullopt. Collective with the options' comm.
  std::optional<int64_t> latest_step();
  // Every step directory, sorted by step. Collective with the options' comm.
  std::vector<StepInfo> list_steps();

  // Loads step `step` into `state_dict` in place. Collective. Error(kNotFound)
  // when that step is missing or incomplete.
  void load(int64_t step, StateDict& state_dict, LoadOptions options = {});
  // Loads the latest complete step and returns it; nullopt (state dict
  // untouched) when there is none. Collective.
  std::optional<int64_t> load_latest(StateDict& state_dict, LoadOptions options = {});

  // Removes incomplete and empty step directories and stale staging
  // directories of crashed saves; a ".step-N.dcpp-old" directory (a crash in
  // the middle of replacing step N without RENAME_EXCHANGE) is renamed back
  // when step N is missing, removed otherwise. Foreign directories are left
  // alone. Collective with the options' comm.
  CleanupReport cleanup();

 private:
  FileSystem& fs() const { return *fs_; }

  std::string root_;
  CheckpointManagerOptions options_;
  FileSystemPtr fs_;
};

}  // namespace dcpp
