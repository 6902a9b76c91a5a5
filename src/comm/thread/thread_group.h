// Shared state of the thread backend: a Group is one communicator's
// rendezvous (every rank of it is a thread of this process); a Tree is the
// root group run_ranks created plus every group split from it. All groups of
// a tree share the tree's mutex, so a failure can be recorded and every
// waiter of every group woken without any lock ordering; each group has its
// own condition variable so completing a phase wakes only that group.
// Thread-safety: everything below is guarded by Tree::mu unless noted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/error.h"

namespace dcpp::comm_thread {

using Clock = std::chrono::steady_clock;

class Group;

struct Failure {
  int world_rank = -1;
  ErrorCode code = ErrorCode::kComm;
  std::string cause;
};

struct Tree {
  explicit Tree(int world_size) : finished(static_cast<size_t>(world_size), false) {}

  // Records the first failure of the tree and wakes every waiter; later
  // failures are consequences of the first and are dropped. Returns whether
  // this call recorded it. Caller holds mu.
  bool record_failure_locked(int world_rank, ErrorCode code, std::string cause);
  void wake_all_locked();

  std::mutex mu;
  bool failed = false;
  Failure failure;
  // finished[w]: world rank w's function has returned (or thrown), so it
  // will never arrive at another collective.
  std::vector<bool> finished;
  std::vector<std::weak_ptr<Group>> groups;
};

// One rank's contribution to the current collective. Written by its owner
// before it arrives, read by the others only between the phases, so the
// rendezvous mutex orders every access.
struct Slot {
  const void* in = nullptr;
  void* out = nullptr;
  size_t bytes = 0;
  size_t count = 0;
  DType dtype = DType::kFloat32;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  int color = 0;
  int key = 0;
  const Blob* blob = nullptr;
  const std::vector<Blob>* blobs = nullptr;
  // all_to_all_v(&&): receiver r moves blobs[r] out (each element has one reader).
  std::vector<Blob>* movable_blobs = nullptr;
  // all_reduce: this rank's reduced slice, published after the first phase.
  const void* partial = nullptr;
};

class Group {
 public:
  Group(std::shared_ptr<Tree> tree, std::vector<int> world_ranks);

  int size() const { return static_cast<int>(world_ranks_.size()); }
  int world_rank(int rank) const { return world_ranks_[static_cast<size_t>(rank)]; }
  const std::shared_ptr<Tree>& tree() const { return tree_; }
  Slot& slot(int rank) { return slots_[static_cast<size_t>(rank)]; }
  const Slot& slot(int rank) const { return slots_[static_cast<size_t>(rank)]; }

  // One phase of a collective: blocks until every rank of the group has
  // arrived with the same `op`. `on_last` runs under the lock in the last
  // rank to arrive, while all others wait, and may inspect every slot; a
  // non-empty string it returns is an argument mismatch that every rank then
  // throws as Error(kInvalidArgument). Throws Error(kComm) once the tree has
  // failed, Error(kTimeout) (and fails the tree) past `deadline`.
  void arrive(int rank, std::string_view op, Clock::time_point deadline, std::chrono::milliseconds timeout,
              const std::function<std::string()>& on_last = {});

  // A later phase of a collective whose first phase completed: every rank is
  // past that phase and will arrive here, and its peers may still be reading
  // this rank's buffers, so it waits for all of them even if the tree has
  // failed meanwhile (returning early could free memory a peer is copying).
  void release(int rank);

  // Throws Error(kComm) naming the tree's failure if there is one.
  void throw_if_failed(int rank, std::string_view op);

  // Result of split() for each rank of this group, filled by the last
  // arriver of the split phase and taken by each rank after it.
  struct SplitResult {
    std::shared_ptr<Group> group;
    int rank = -1;
  };
  std::vector<SplitResult>& split_results() { return split_results_; }

 private:
  [[noreturn]] void throw_failed_locked(int rank, std::string_view op);

  std::shared_ptr<Tree> tree_;
  std::vector<int> world_ranks_;
  std::vector<Slot> slots_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
  int arrived_count_ = 0;
  std::vector<bool> arrived_;
  std::string op_;  // the collective the first arriver of this phase called
  int op_rank_ = -1;
  std::string phase_error_;
  std::vector<SplitResult> split_results_;

  friend struct Tree;
};

}  // namespace dcpp::comm_thread
