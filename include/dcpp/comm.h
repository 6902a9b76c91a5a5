// dcpp::Communicator — collectives among the ranks of a group.
//
// Two backends implement it: threads (run_ranks: N ranks as threads of one
// process, the embedded default) and MPI (Open MPI, one rank per process).
// Every collective must be called by every rank of the communicator in the
// same order. Failure is collective: when one rank fails (an exception on a
// thread rank, or fail() called), every pending and later collective on every
// rank throws Error(kComm) naming the failing rank and its cause; a collective
// that waits past the communicator's timeout throws Error(kTimeout). Under MPI
// a peer's death cannot be survived (Open MPI 4.1), so a local failure or an
// expired deadline aborts the whole job with a message naming rank and cause.
// Error messages name ranks by their world rank (their rank in the
// communicator run_ranks or mpi_world created), also inside split groups.
//
// Ownership: communicators are shared (std::shared_ptr); split() returns a new
// one that stays valid while any handle to it lives. Thread-safety: one
// communicator handle is used by one thread (its rank) at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dcpp/dtype.h"

namespace dcpp {

class Tensor;

enum class ReduceOp { kSum, kMax, kMin };

// A byte blob exchanged by the variable-size collectives.
using Blob = std::string;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "threads" or "mpi".
  virtual std::string backend() const = 0;

  virtual void barrier() = 0;
  // Root's `bytes` bytes at `data` are copied to every rank's `data`.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank contributes `bytes` at `send`; `recv` receives size()*bytes, rank order.
  virtual void all_gather(const void* send, void* recv, size_t bytes) = 0;
  // Variable-size all-gather: result[r] is rank r's blob.
  virtual std::vector<Blob> all_gather_v(const Blob& send) = 0;
  // Variable-size gather at root: root gets every rank's blob, others an empty vector.
  virtual std::vector<Blob> gather_v(const Blob& send, int root) = 0;
  // Root sends blobs[r] to rank r (blobs ignored elsewhere); returns this rank's blob.
  virtual Blob scatter_v(const std::vector<Blob>& blobs, int root) = 0;
  // send[r] goes to rank r; result[r] is what rank r sent to this rank.
  virtual std::vector<Blob> all_to_all_v(const std::vector<Blob>& send) = 0;
  // The same, for a caller that no longer needs `send`: a backend may move
  // the blobs out instead of copying them (the thread backend does).
  virtual std::vector<Blob> all_to_all_v(std::vector<Blob>&& send) {
    return all_to_all_v(static_cast<const std::vector<Blob>&>(send));
  }
  // In place over `count` elements of `dtype` (floating and integer dtypes).
  virtual void all_reduce(void* data, size_t count, DType dtype, ReduceOp op) = 0;
  // `send` holds size()*count elements; this rank receives the reduction of block rank() in `recv`.
  virtual void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) = 0;
  // Ranks with the same color form a new communicator, ordered by (key, rank).
  // Collective over this communicator. A rank passing a negative color joins
  // no group and gets nullptr (MPI_UNDEFINED).
  virtual std::shared_ptr<Communicator> split(int color, int key) = 0;

  // Marks this rank failed with `cause`: the other ranks' pending and later
  // collectives throw Error(kComm) naming this rank. Under MPI: aborts the job.
  virtual void fail(const std::string& cause) = 0;

  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Convenience: all-reduce a contiguous tensor in place.
  void all_reduce(Tensor& tensor, ReduceOp op);

 protected:
  std::chrono::milliseconds timeout_{std::chrono::minutes(5)};
};

using CommPtr = std::shared_ptr<Communicator>;

// ---- thread backend ----
struct RunRanksOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};
// Runs fn(comm) on n threads, one rank each, and joins them. If any rank
// throws, the others' collectives fail fast and run_ranks rethrows the first
// failure (a dcpp::Error naming the rank).
void run_ranks(int n, const std::function<void(CommPtr)>& fn, RunRanksOptions options = {});

// ---- MPI backend ----
// True when dcpp was built with MPI support.
bool mpi_available();
// Initialises MPI on first use (and finalises it at exit); returns the world
// communicator. Throws Error(kUnsupported) without MPI support.
CommPtr mpi_world();
// True when this process was started by mpirun (OMPI_COMM_WORLD_SIZE is set).
bool launched_by_mpirun();

}  // namespace dcpp
