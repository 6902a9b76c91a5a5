#include "comm/thread/thread_group.h"

#include <utility>

#include "comm/reduce.h"

namespace dcpp::comm_thread {

bool Tree::record_failure_locked(int world_rank, ErrorCode code, std::string cause) {
  if (failed) return false;
  failed = true;
  failure = Failure{world_rank, code, std::move(cause)};
  wake_all_locked();
  return true;
}

void Tree::wake_all_locked() {
  for (auto& weak : groups) {
    if (auto group = weak.lock()) group->cv_.notify_all();
  }
}

Group::Group(std::shared_ptr<Tree> tree, std::vector<int> world_ranks)
    : tree_(std::move(tree)),
      world_ranks_(std::move(world_ranks)),
      slots_(world_ranks_.size()),
      arrived_(world_ranks_.size(), false),
      split_results_(world_ranks_.size()) {}

void Group::throw_if_failed(int rank, std::string_view op) {
  std::lock_guard lock(tree_->mu);
  if (tree_->failed) throw_failed_locked(rank, op);
}

void Group::throw_failed_locked(int rank, std::string_view op) {
  const Failure& f = tree_->failure;
  throw Error(ErrorCode::kComm, "rank " + std::to_string(f.world_rank) + " failed: " + f.cause + " (seen by rank " +
                                    std::to_string(world_rank(rank)) + " in " + std::string(op) + ")");
}

void Group::arrive(int rank, std::string_view op, Clock::time_point deadline, std::chrono::milliseconds timeout,
                   const std::function<std::string()>& on_last) {
  std::unique_lock lock(tree_->mu);
  if (tree_->failed) throw_failed_locked(rank, op);

  if (arrived_count_ == 0) {
    op_ = op;
    op_rank_ = rank;
  } else if (op_ != op) {
    // The ranks disagree on the sequence of collectives: nothing sensible can
    // follow, and the others may wait in phases this rank will never reach.
    tree_->record_failure_locked(world_rank(rank), ErrorCode::kComm,
                                 "called " + std::string(op) + " while rank " + std::to_string(world_rank(op_rank_)) +
                                     " called " + op_ +
                                     " (every rank must call the same collectives in the same order)");
    throw_failed_locked(rank, op);
  }
  arrived_[static_cast<size_t>(rank)] = true;
  ++arrived_count_;

  if (arrived_count_ == size()) {
    try {
      phase_error_ = on_last ? on_last() : std::string();
    } catch (const std::exception& e) {
      // The phase cannot complete; the waiters see the failure instead.
      tree_->record_failure_locked(world_rank(rank), ErrorCode::kInternal, std::string(op) + ": " + e.what());
      throw_failed_locked(rank, op);
    }
    arrived_count_ = 0;
    arrived_.assign(arrived_.size(), false);
    ++generation_;
    cv_.notify_all();
    if (!phase_error_.empty()) throw Error(ErrorCode::kInvalidArgument, phase_error_);
    return;
  }

  const uint64_t generation = generation_;
  while (true) {
    if (generation_ != generation) {
      if (!phase_error_.empty()) throw Error(ErrorCode::kInvalidArgument, phase_error_);
      return;
    }
    if (tree_->failed) throw_failed_locked(rank, op);
    // A rank whose function has returned will never arrive: fail now rather
    // than at the deadline.
    for (int r = 0; r < size(); ++r) {
      if (!arrived_[static_cast<size_t>(r)] && tree_->finished[static_cast<size_t>(world_rank(r))]) {
        tree_->record_failure_locked(world_rank(r), ErrorCode::kComm,
                                     "returned from its function without calling " + std::string(op) +
                                         " (every rank must call the same collectives in the same order)");
        throw_failed_locked(rank, op);
      }
    }
    if (Clock::now() >= deadline) {
      std::vector<int> missing;
      for (int r = 0; r < size(); ++r) {
        if (!arrived_[static_cast<size_t>(r)]) missing.push_back(world_rank(r));
      }
      std::string cause = std::string(op) + " timed out after " + comm_detail::describe_duration(timeout) +
                          " in a group of " + std::to_string(size()) + ": " + comm_detail::describe_ranks(missing) +
                          (missing.size() == 1 ? " has" : " have") + " not arrived";
      // Failing the tree releases the ranks that did arrive; they report
      // this rank's timeout as the cause.
      if (!tree_->record_failure_locked(world_rank(rank), ErrorCode::kTimeout, cause)) {
        throw_failed_locked(rank, op);
      }
      throw Error(ErrorCode::kTimeout, "rank " + std::to_string(world_rank(rank)) + ": " + cause);
    }
    cv_.wait_until(lock, deadline);
  }
}

void Group::release(int rank) {
  std::unique_lock lock(tree_->mu);
  arrived_[static_cast<size_t>(rank)] = true;
  if (++arrived_count_ == size()) {
    arrived_count_ = 0;
    arrived_.assign(arrived_.size(), false);
    phase_error_.clear();
    ++generation_;
    cv_.notify_all();
    return;
  }
  const uint64_t generation = generation_;
  cv_.wait(lock, [&] { return generation_ != generation; });
}

}  // namespace dcpp::comm_thread
