// The thread backend: N ranks as threads of one process (run_ranks). Every
// collective is one or more rendezvous phases of the rank's Group; between
// phases each rank reads its peers' buffers directly, so data is copied once
// and nobody writes a buffer a peer may still be reading.
#include <algorithm>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "comm/reduce.h"
#include "comm/thread/thread_group.h"
#include "dcpp/comm.h"
#include "dcpp/error.h"

namespace dcpp {
namespace comm_thread {
namespace {

using comm_detail::check_reducible;
using comm_detail::reduce_in_order;

std::string rank_str(int r) { return std::to_string(r); }

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Group> group, int rank, std::chrono::milliseconds timeout)
      : group_(std::move(group)), rank_(rank) {
    timeout_ = timeout;
  }

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  std::string backend() const override { return "threads"; }

  void barrier() override { sync("barrier", deadline()); }

  void broadcast(void* data, size_t bytes, int root) override {
    static constexpr const char* kOp = "broadcast";
    check_root(root, kOp);
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.in = data;
    s.bytes = bytes;
    s.root = root;
    sync(kOp, dl, [this] {
      if (auto e = mismatch(kOp, "root", [](const Slot& s) { return static_cast<int64_t>(s.root); }); !e.empty()) {
        return e;
      }
      return mismatch(kOp, "bytes", [](const Slot& s) { return static_cast<int64_t>(s.bytes); });
    });
    if (rank_ != root && bytes > 0) std::memcpy(data, group_->slot(root).in, bytes);
    release();
  }

  void all_gather(const void* send, void* recv, size_t bytes) override {
    static constexpr const char* kOp = "all_gather";
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.in = send;
    s.bytes = bytes;
    sync(kOp, dl, [this] {
      return mismatch(kOp, "bytes", [](const Slot& s) { return static_cast<int64_t>(s.bytes); });
    });
    auto* out = static_cast<std::byte*>(recv);
    for (int r = 0; r < size(); ++r) {
      if (bytes == 0) break;
      std::byte* dst = out + static_cast<size_t>(r) * bytes;
      const void* src = group_->slot(r).in;
      // In-place use: this rank's block already is `send`, which peers are
      // reading right now, so it must not even be rewritten with itself.
      if (dst == src) continue;
      std::memmove(dst, src, bytes);
    }
    release();
  }

  std::vector<Blob> all_gather_v(const Blob& send) override {
    static constexpr const char* kOp = "all_gather_v";
    std::vector<Blob> result(static_cast<size_t>(size()));
    const auto dl = deadline();
    mine(kOp).blob = &send;
    sync(kOp, dl);
    between([&] {
      for (int r = 0; r < size(); ++r) result[static_cast<size_t>(r)] = *group_->slot(r).blob;
    });
    return result;
  }

  std::vector<Blob> gather_v(const Blob& send, int root) override {
    static constexpr const char* kOp = "gather_v";
    check_root(root, kOp);
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.blob = &send;
    s.root = root;
    sync(kOp, dl, [this] {
      return mismatch(kOp, "root", [](const Slot& s) { return static_cast<int64_t>(s.root); });
    });
    std::vector<Blob> result;
    between([&] {
      if (rank_ != root) return;
      result.resize(static_cast<size_t>(size()));
      for (int r = 0; r < size(); ++r) result[static_cast<size_t>(r)] = *group_->slot(r).blob;
    });
    return result;
  }

  Blob scatter_v(const std::vector<Blob>& blobs, int root) override {
    static constexpr const char* kOp = "scatter_v";
    check_root(root, kOp);
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.blobs = &blobs;
    s.root = root;
    sync(kOp, dl, [this] {
      if (auto e = mismatch(kOp, "root", [](const Slot& s) { return static_cast<int64_t>(s.root); }); !e.empty()) {
        return e;
      }
      const int root = group_->slot(0).root;
      const size_t n = group_->slot(root).blobs->size();
      if (n != static_cast<size_t>(size())) {
        return std::string(kOp) + ": root rank " + rank_str(group_->world_rank(root)) + " passed " +
               std::to_string(n) + " blobs for a group of " + std::to_string(size()) + " ranks";
      }
      return std::string();
    });
    Blob result;
    between([&] { result = (*group_->slot(root).blobs)[static_cast<size_t>(rank_)]; });
    return result;
  }

  std::vector<Blob> all_to_all_v(const std::vector<Blob>& send) override { return exchange_blobs(send, nullptr); }

  // Each receiver moves its blob out of the sender's vector: no copy.
  std::vector<Blob> all_to_all_v(std::vector<Blob>&& send) override { return exchange_blobs(send, &send); }

  void all_reduce(void* data, size_t count, DType dtype, ReduceOp op) override {
    static constexpr const char* kOp = "all_reduce";
    check_reducible(dtype, op, kOp);
    // Rank r reduces slice r of every rank's input (in rank order) into its
    // own buffer; after the second phase every rank copies all slices. The
    // buffers are allocated first so nothing can throw between the phases.
    const int n = size();
    const size_t es = dtype_size(dtype);
    const size_t chunk = (count + static_cast<size_t>(n) - 1) / static_cast<size_t>(n);
    auto slice = [&](int r) {
      const size_t lo = std::min(count, static_cast<size_t>(r) * chunk);
      return std::pair<size_t, size_t>(lo, std::min(count, lo + chunk) - lo);
    };
    const auto [lo, len] = slice(rank_);
    std::vector<std::byte> partial(len * es);
    std::vector<const void*> inputs(static_cast<size_t>(n));
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.out = data;
    s.count = count;
    s.dtype = dtype;
    s.op = op;
    sync(kOp, dl, [this] { return reduce_mismatch(kOp); });
    for (int r = 0; r < n; ++r) {
      inputs[static_cast<size_t>(r)] = static_cast<const std::byte*>(group_->slot(r).out) + lo * es;
    }
    reduce_in_order(inputs.data(), n, partial.data(), len, dtype, op);
    s.partial = partial.data();
    release();
    for (int r = 0; r < n; ++r) {
      const auto [rlo, rlen] = slice(r);
      if (rlen > 0) std::memcpy(static_cast<std::byte*>(data) + rlo * es, group_->slot(r).partial, rlen * es);
    }
    release();
  }

  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    static constexpr const char* kOp = "reduce_scatter";
    check_reducible(dtype, op, kOp);
    const int n = size();
    const size_t block = count * dtype_size(dtype);
    std::vector<const void*> inputs(static_cast<size_t>(n));
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.in = send;
    s.count = count;
    s.dtype = dtype;
    s.op = op;
    sync(kOp, dl, [this] { return reduce_mismatch(kOp); });
    for (int r = 0; r < n; ++r) {
      inputs[static_cast<size_t>(r)] =
          static_cast<const std::byte*>(group_->slot(r).in) + static_cast<size_t>(rank_) * block;
    }
    reduce_in_order(inputs.data(), n, recv, count, dtype, op);
    release();
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    static constexpr const char* kOp = "split";
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.color = color;
    s.key = key;
    sync(kOp, dl, [this] {
      // Runs under the tree lock with every rank of this group waiting.
      std::map<int, std::vector<int>> members;  // color -> ranks of this group
      for (int r = 0; r < size(); ++r) {
        if (group_->slot(r).color >= 0) members[group_->slot(r).color].push_back(r);
      }
      auto& results = group_->split_results();
      for (auto& result : results) result = {};
      for (auto& [c, ranks] : members) {
        std::stable_sort(ranks.begin(), ranks.end(),
                         [this](int a, int b) { return group_->slot(a).key < group_->slot(b).key; });
        std::vector<int> world;
        for (int r : ranks) world.push_back(group_->world_rank(r));
        auto child = std::make_shared<Group>(group_->tree(), std::move(world));
        auto& groups = group_->tree()->groups;
        std::erase_if(groups, [](const std::weak_ptr<Group>& g) { return g.expired(); });
        groups.push_back(child);
        for (size_t i = 0; i < ranks.size(); ++i) {
          results[static_cast<size_t>(ranks[i])] = {child, static_cast<int>(i)};
        }
      }
      return std::string();
    });
    Group::SplitResult result = std::move(group_->split_results()[static_cast<size_t>(rank_)]);
    if (!result.group) return nullptr;
    return std::make_shared<ThreadCommunicator>(std::move(result.group), result.rank, timeout_);
  }

  void fail(const std::string& cause) override {
    auto& tree = group_->tree();
    std::lock_guard lock(tree->mu);
    tree->record_failure_locked(group_->world_rank(rank_), ErrorCode::kComm, cause);
  }

 private:
  Slot& mine(const char* op) {
    group_->throw_if_failed(rank_, op);
    return group_->slot(rank_);
  }

  Clock::time_point deadline() const {
    // Clamp so that a huge timeout cannot overflow the clock.
    const auto cap = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365));
    return Clock::now() + std::clamp(timeout_, std::chrono::milliseconds(0), cap);
  }

  void sync(const char* op, Clock::time_point dl, const std::function<std::string()>& on_last = {}) {
    group_->arrive(rank_, op, dl, timeout_, on_last);
  }

  void release() { group_->release(rank_); }

  // Work between the first and a later phase: whatever happens, this rank
  // must still arrive at the later phase, or its peers would wait forever.
  std::vector<Blob> exchange_blobs(const std::vector<Blob>& send, std::vector<Blob>* movable) {
    static constexpr const char* kOp = "all_to_all_v";
    std::vector<Blob> result(static_cast<size_t>(size()));
    const auto dl = deadline();
    Slot& s = mine(kOp);
    s.blobs = &send;
    s.movable_blobs = movable;
    sync(kOp, dl, [this] {
      for (int r = 0; r < size(); ++r) {
        const size_t n = group_->slot(r).blobs->size();
        if (n != static_cast<size_t>(size())) {
          return std::string(kOp) + ": rank " + rank_str(group_->world_rank(r)) + " passed " + std::to_string(n) +
                 " blobs for a group of " + std::to_string(size()) + " ranks";
        }
      }
      return std::string();
    });
    between([&] {
      for (int r = 0; r < size(); ++r) {
        const Slot& from = group_->slot(r);
        Blob& out = result[static_cast<size_t>(r)];
        if (from.movable_blobs) {
          out = std::move((*from.movable_blobs)[static_cast<size_t>(rank_)]);
        } else {
          out = (*from.blobs)[static_cast<size_t>(rank_)];
        }
      }
    });
    return result;
  }

  template <typename F>
  void between(F&& work) {
    std::exception_ptr error;
    try {
      work();
    } catch (...) {
      error = std::current_exception();
    }
    release();
    if (error) std::rethrow_exception(error);
  }

  void check_root(int root, const char* op) const {
    if (root < 0 || root >= size()) {
      throw Error(ErrorCode::kInvalidArgument, std::string(op) + ": root " + std::to_string(root) +
                                                   " is out of range for a group of " + std::to_string(size()) +
                                                   " ranks (rank " + rank_str(group_->world_rank(rank_)) + ")");
    }
  }

  // Compares one argument across the group's slots (called from on_last).
  template <typename Get>
  std::string mismatch(const char* op, const char* what, Get get) const {
    const int64_t first = get(group_->slot(0));
    for (int r = 1; r < size(); ++r) {
      const int64_t v = get(group_->slot(r));
      if (v != first) {
        return std::string(op) + ": rank " + rank_str(group_->world_rank(r)) + " passed " + what + " " +
               std::to_string(v) + " but rank " + rank_str(group_->world_rank(0)) + " passed " +
               std::to_string(first);
      }
    }
    return {};
  }

  std::string reduce_mismatch(const char* op) const {
    if (auto e = mismatch(op, "count", [](const Slot& s) { return static_cast<int64_t>(s.count); }); !e.empty()) {
      return e;
    }
    for (int r = 1; r < size(); ++r) {
      const Slot& a = group_->slot(0);
      const Slot& b = group_->slot(r);
      if (a.dtype != b.dtype || a.op != b.op) {
        return std::string(op) + ": rank " + rank_str(group_->world_rank(r)) + " passed " +
               std::string(dtype_name(b.dtype)) + "/" + std::string(comm_detail::reduce_op_name(b.op)) +
               " but rank " + rank_str(group_->world_rank(0)) + " passed " + std::string(dtype_name(a.dtype)) +
               "/" + std::string(comm_detail::reduce_op_name(a.op));
      }
    }
    return {};
  }

  std::shared_ptr<Group> group_;
  int rank_;
};

}  // namespace
}  // namespace comm_thread

void run_ranks(int n, const std::function<void(CommPtr)>& fn, RunRanksOptions options) {
  using namespace comm_thread;
  if (n < 1) throw Error(ErrorCode::kInvalidArgument, "run_ranks: world size " + std::to_string(n) + " < 1");
  if (!fn) throw Error(ErrorCode::kInvalidArgument, "run_ranks: empty function");
  auto tree = std::make_shared<Tree>(n);
  std::vector<int> world(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) world[static_cast<size_t>(r)] = r;
  auto root = std::make_shared<Group>(tree, std::move(world));
  {
    std::lock_guard lock(tree->mu);
    tree->groups.push_back(root);
  }

  auto finish = [&tree](int rank, std::optional<ErrorCode> code, std::string cause) {
    std::lock_guard lock(tree->mu);
    if (code) tree->record_failure_locked(rank, *code, std::move(cause));
    tree->finished[static_cast<size_t>(rank)] = true;
    tree->wake_all_locked();
  };
  auto body = [&](int rank) {
    try {
      CommPtr comm = std::make_shared<ThreadCommunicator>(root, rank, options.timeout);
      fn(std::move(comm));
      finish(rank, std::nullopt, {});
    } catch (const Error& e) {
      finish(rank, e.code(), e.message());
    } catch (const std::exception& e) {
      finish(rank, ErrorCode::kComm, e.what());
    } catch (...) {
      finish(rank, ErrorCode::kComm, "unknown exception (not derived from std::exception)");
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    try {
      threads.emplace_back(body, r);
    } catch (const std::system_error& e) {
      // Ranks that cannot start count as failed, so the started ones return.
      for (int q = r; q < n; ++q) {
        finish(q, ErrorCode::kInternal, std::string("could not start its thread: ") + e.what());
      }
      break;
    }
  }
  for (auto& t : threads) t.join();

  // All threads have joined: no lock needed.
  if (tree->failed) {
    throw Error(tree->failure.code, "rank " + std::to_string(tree->failure.world_rank) + ": " + tree->failure.cause);
  }
}

}  // namespace dcpp
