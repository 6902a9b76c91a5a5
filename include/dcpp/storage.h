// StorageWriter / StorageReader: the seam between the planners and a file
// format. One subfolder of src/storage per format (fs/ is the native one).
//
// Save protocol (driven by save(), identical on every rank):
//   set_up(rank, world, is_coordinator)   every rank
//   prepare()                             coordinator only (e.g. create a staging dir);
//                                         save() then synchronises all ranks
//   write_data(plan, planner)             every rank: its final plan's items
//   finish(metadata, results)             coordinator only: metadata last, atomic commit
//   abort()                               every rank, after a failure anywhere: removes
//                                         what this save wrote, never an old checkpoint
// Load protocol: set_up(...), read_metadata() on every rank, then
// read_data(plan, planner) with this rank's plan.
// A writer or reader object serves one rank of one save or load; it is not
// thread-safe, but separate objects may be used by separate thread-ranks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dcpp/metadata.h"
#include "dcpp/planner.h"

namespace dcpp {

class StorageWriter {
 public:
  virtual ~StorageWriter() = default;
  virtual void set_up(int rank, int world_size, bool is_coordinator) = 0;
  virtual void prepare() = 0;
  virtual std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) = 0;
  // `metadata` has every key's dtype, shape, values' kinds and paths filled;
  // the writer fills chunk/value locations from `results` (all ranks'), then commits.
  virtual void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) = 0;
  virtual void abort() noexcept = 0;
};

class StorageReader {
 public:
  virtual ~StorageReader() = default;
  virtual void set_up(int rank, int world_size, bool is_coordinator) = 0;
  // The load's communicator, handed over by load() right after set_up (null
  // for a single process). A reader may use it to share work across ranks —
  // the native reader reads each needed block once for all ranks — and its
  // read_data then becomes collective over it. Default: ignored.
  virtual void set_communicator(CommPtr comm) {}
  virtual Metadata read_metadata() = 0;
  // Reads every item of `plan`: tensor boxes into planner.resolve_tensor(item)
  // (converting dtype), values through planner.load_value. Verifies every
  // checksum block it touches before any byte reaches the planner.
  virtual void read_data(const LoadPlan& plan, LoadPlanner& planner) = 0;
};

}  // namespace dcpp
