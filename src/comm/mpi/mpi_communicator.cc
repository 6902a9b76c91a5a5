// The MPI backend: one rank per process, over MPI_COMM_WORLD and the
// communicators MPI_Comm_split derives from it. Every collective is issued
// non-blocking and polled with MPI_Test against the communicator's deadline:
// Open MPI 4.1 cannot survive a dead or stuck peer, so on expiry (or fail())
// the rank prints "dcpp: rank R: <cause>" and aborts the whole job rather
// than leave processes waiting forever.
//
// Floating-point all_reduce/reduce_scatter do not use MPI's reductions, whose
// combination order is unspecified: ranks exchange slices (all-to-all), each
// reduces its slice in rank order with the shared kernel, and the slices are
// gathered back. Results are then bit-identical on every rank, every run,
// and equal to the thread backend's.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "comm/reduce.h"
#include "dcpp/comm.h"
#include "dcpp/error.h"

namespace dcpp {
namespace {

using Clock = std::chrono::steady_clock;
using comm_detail::check_reducible;
using comm_detail::reduce_in_order;

// Largest count one MPI call takes (its counts are int); transfers beyond are
// chunked (broadcast, reductions) or rejected (variable-size collectives).
constexpr size_t kMaxCount = static_cast<size_t>(INT_MAX);
// Chunk size for chunked transfers: 1 GiB keeps every count an int.
constexpr size_t kChunkBytes = size_t{1} << 30;

int world_rank_of_process() {
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

[[noreturn]] void abort_job(const std::string& cause) {
  std::fprintf(stderr, "dcpp: rank %d: %s\n", world_rank_of_process(), cause.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this is for the compiler and for broken MPIs.
}

void check_mpi(int rc, const char* call, const char* op) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  abort_job(std::string(op) + ": " + call + " failed: " + std::string(text, static_cast<size_t>(len)));
}

// MPI types for dtypes MPI reduces exactly (integers: order cannot matter).
MPI_Datatype integer_mpi_type(DType dtype) {
  switch (dtype) {
    case DType::kInt8: return MPI_INT8_T;
    case DType::kInt16: return MPI_INT16_T;
    case DType::kInt32: return MPI_INT32_T;
    case DType::kInt64: return MPI_INT64_T;
    case DType::kUInt8: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

int to_int(size_t v) { return static_cast<int>(v); }

[[noreturn]] void throw_too_large(const char* op, size_t bytes) {
  throw Error(ErrorCode::kUnsupported, std::string(op) + ": " + std::to_string(bytes) +
                                           " bytes exceed the 2 GiB (INT_MAX) count limit of one MPI call; "
                                           "split the transfer into smaller collectives");
}

class MpiCommunicator final : public Communicator {
 public:
  using Communicator::all_to_all_v;
  // `owned`: the communicator came from MPI_Comm_split and is freed here.
  MpiCommunicator(MPI_Comm comm, bool owned, std::chrono::milliseconds timeout) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    world_rank_ = world_rank_of_process();
    timeout_ = timeout;
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void barrier() override {
    MPI_Request req;
    check_mpi(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier", "barrier");
    wait(req, "barrier", deadline());
  }

  void broadcast(void* data, size_t bytes, int root) override {
    static constexpr const char* kOp = "broadcast";
    check_root(root, kOp);
    const auto dl = deadline();
    auto* p = static_cast<std::byte*>(data);
    for (size_t off = 0; off < bytes || off == 0; off += kChunkBytes) {
      const size_t len = std::min(kChunkBytes, bytes - off);
      MPI_Request req;
      check_mpi(MPI_Ibcast(p + off, to_int(len), MPI_BYTE, root, comm_, &req), "MPI_Ibcast", kOp);
      wait(req, kOp, dl);
      if (bytes == 0) break;
    }
  }

  void all_gather(const void* send, void* recv, size_t bytes) override {
    static constexpr const char* kOp = "all_gather";
    if (bytes > kMaxCount) throw_too_large(kOp, bytes);
    const auto dl = deadline();
    auto* out = static_cast<std::byte*>(recv);
    const void* src = send;
    // MPI forbids overlapping buffers except through MPI_IN_PLACE.
    if (send == out + static_cast<size_t>(rank_) * bytes) src = MPI_IN_PLACE;
    MPI_Request req;
    check_mpi(MPI_Iallgather(src, to_int(bytes), MPI_BYTE, out, to_int(bytes), MPI_BYTE, comm_, &req),
              "MPI_Iallgather", kOp);
    wait(req, kOp, dl);
  }

  std::vector<Blob> all_gather_v(const Blob& send) override {
    static constexpr const char* kOp = "all_gather_v";
    const auto dl = deadline();
    const std::vector<uint64_t> sizes = exchange_sizes(send.size(), kOp, dl);
    std::vector<int> counts, displs;
    const size_t total = layout(sizes, counts, displs, kOp);
    std::string flat(total, '\0');
    MPI_Request req;
    check_mpi(MPI_Iallgatherv(send.data(), to_int(send.size()), MPI_BYTE, flat.data(), counts.data(), displs.data(),
                              MPI_BYTE, comm_, &req),
              "MPI_Iallgatherv", kOp);
    wait(req, kOp, dl);
    return unflatten(flat, counts, displs);
  }

  std::vector<Blob> gather_v(const Blob& send, int root) override {
    static constexpr const char* kOp = "gather_v";
    check_root(root, kOp);
    const auto dl = deadline();
    // Every rank learns every size so that all reject an oversized gather
    // together instead of leaving the root waiting.
    const std::vector<uint64_t> sizes = exchange_sizes(send.size(), kOp, dl);
    std::vector<int> counts, displs;
    const size_t total = layout(sizes, counts, displs, kOp);
    std::string flat(rank_ == root ? total : 0, '\0');
    MPI_Request req;
    check_mpi(MPI_Igatherv(send.data(), to_int(send.size()), MPI_BYTE, flat.data(), counts.data(), displs.data(),
                           MPI_BYTE, root, comm_, &req),
              "MPI_Igatherv", kOp);
    wait(req, kOp, dl);
    if (rank_ != root) return {};
    return unflatten(flat, counts, displs);
  }

  Blob scatter_v(const std::vector<Blob>& blobs, int root) override {
    static constexpr const char* kOp = "scatter_v";
    check_root(root, kOp);
    const auto dl = deadline();
    // The root broadcasts [valid, size_0, ..., size_{n-1}] so that every rank
    // can reject a bad call together.
    std::vector<uint64_t> header(static_cast<size_t>(size_) + 1, 0);
    if (rank_ == root) {
      header[0] = blobs.size();
      if (blobs.size() == static_cast<size_t>(size_)) {
        for (int r = 0; r < size_; ++r) header[static_cast<size_t>(r) + 1] = blobs[static_cast<size_t>(r)].size();
      }
    }
    MPI_Request req;
    check_mpi(MPI_Ibcast(header.data(), size_ + 1, MPI_UINT64_T, root, comm_, &req), "MPI_Ibcast", kOp);
    wait(req, kOp, dl);
    if (header[0] != static_cast<uint64_t>(size_)) {
      throw Error(ErrorCode::kInvalidArgument, std::string(kOp) + ": root rank " + std::to_string(root) + " passed " +
                                                   std::to_string(header[0]) + " blobs for a group of " +
                                                   std::to_string(size_) + " ranks");
    }
    const std::vector<uint64_t> sizes(header.begin() + 1, header.end());
    std::vector<int> counts, displs;
    const size_t total = layout(sizes, counts, displs, kOp);
    std::string flat;
    if (rank_ == root) {
      flat.reserve(total);
      for (const Blob& b : blobs) flat += b;
    }
    Blob mine(sizes[static_cast<size_t>(rank_)], '\0');
    check_mpi(MPI_Iscatterv(flat.data(), counts.data(), displs.data(), MPI_BYTE, mine.data(), to_int(mine.size()),
                            MPI_BYTE, root, comm_, &req),
              "MPI_Iscatterv", kOp);
    wait(req, kOp, dl);
    return mine;
  }

  std::vector<Blob> all_to_all_v(const std::vector<Blob>& send) override {
    static constexpr const char* kOp = "all_to_all_v";
    const auto dl = deadline();
    const size_t n = static_cast<size_t>(size_);
    const bool bad_count = send.size() != n;
    std::vector<uint64_t> send_sizes(n, 0), recv_sizes(n, 0);
    if (!bad_count) {
      for (size_t r = 0; r < n; ++r) send_sizes[r] = send[r].size();
    }
    MPI_Request req;
    check_mpi(MPI_Ialltoall(send_sizes.data(), 1, MPI_UINT64_T, recv_sizes.data(), 1, MPI_UINT64_T, comm_, &req),
              "MPI_Ialltoall", kOp);
    wait(req, kOp, dl);
    std::vector<int> scounts, sdispls, rcounts, rdispls;
    // Local problems are agreed on (max over ranks) before any rank throws,
    // so no rank is left waiting in the exchange.
    int problem[2] = {bad_count ? 1 : 0, 0};
    if (!fits(send_sizes) || !fits(recv_sizes)) problem[1] = 1;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, problem, 2, MPI_INT, MPI_MAX, comm_, &req), "MPI_Iallreduce", kOp);
    wait(req, kOp, dl);
    if (problem[0] != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(kOp) + ": a rank passed a blob count different from the group size " +
                      std::to_string(size_) + " (this rank, " + std::to_string(world_rank_) + ", passed " +
                      std::to_string(send.size()) + ")");
    }
    if (problem[1] != 0) {
      throw Error(ErrorCode::kUnsupported, std::string(kOp) +
                                               ": a rank would send or receive more than 2 GiB (INT_MAX bytes) in "
                                               "one MPI call; split the exchange into smaller ones");
    }
    const size_t stotal = layout(send_sizes, scounts, sdispls, kOp);
    const size_t rtotal = layout(recv_sizes, rcounts, rdispls, kOp);
    std::string sflat;
    sflat.reserve(stotal);
    for (const Blob& b : send) sflat += b;
    std::string rflat(rtotal, '\0');
    check_mpi(MPI_Ialltoallv(sflat.data(), scounts.data(), sdispls.data(), MPI_BYTE, rflat.data(), rcounts.data(),
                             rdispls.data(), MPI_BYTE, comm_, &req),
              "MPI_Ialltoallv", kOp);
    wait(req, kOp, dl);
    return unflatten(rflat, rcounts, rdispls);
  }

  void all_reduce(void* data, size_t count, DType dtype, ReduceOp op) override {
    static constexpr const char* kOp = "all_reduce";
    check_reducible(dtype, op, kOp);
    const auto dl = deadline();
    const size_t es = dtype_size(dtype);
    auto* p = static_cast<std::byte*>(data);
    // Chunks keep every per-call count within int (and bound the scratch memory).
    const size_t chunk = std::max<size_t>(1, kChunkBytes / es);
    const MPI_Datatype itype = integer_mpi_type(dtype);
    for (size_t off = 0; off < count; off += chunk) {
      const size_t m = std::min(chunk, count - off);
      if (itype != MPI_DATATYPE_NULL) {
        // Integer reductions are exact in any order: MPI's own is fine.
        MPI_Request req;
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, p + off * es, to_int(m), itype, mpi_op(op), comm_, &req),
                  "MPI_Iallreduce", kOp);
        wait(req, kOp, dl);
      } else {
        ordered_all_reduce(p + off * es, m, dtype, op, dl);
      }
    }
    if (count == 0) barrier_for(kOp, dl);
  }

  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype, ReduceOp op) override {
    static constexpr const char* kOp = "reduce_scatter";
    check_reducible(dtype, op, kOp);
    const auto dl = deadline();
    const size_t es = dtype_size(dtype);
    const size_t n = static_cast<size_t>(size_);
    const auto* in = static_cast<const std::byte*>(send);
    auto* out = static_cast<std::byte*>(recv);
    const size_t chunk = std::max<size_t>(1, kChunkBytes / es / n);
    std::vector<std::byte> packed, gathered;
    std::vector<const void*> inputs(n);
    for (size_t off = 0; off < count; off += chunk) {
      const size_t m = std::min(chunk, count - off);
      const std::byte* src = in;
      if (m != count) {
        // Pack this chunk of every destination block contiguously.
        packed.resize(n * m * es);
        for (size_t r = 0; r < n; ++r) std::memcpy(packed.data() + r * m * es, in + (r * count + off) * es, m * es);
        src = packed.data();
      }
      gathered.resize(n * m * es);
      MPI_Request req;
      check_mpi(MPI_Ialltoall(src, to_int(m * es), MPI_BYTE, gathered.data(), to_int(m * es), MPI_BYTE, comm_, &req),
                "MPI_Ialltoall", kOp);
      wait(req, kOp, dl);
      for (size_t r = 0; r < n; ++r) inputs[r] = gathered.data() + r * m * es;
      reduce_in_order(inputs.data(), size_, out + off * es, m, dtype, op);
    }
    if (count == 0) barrier_for(kOp, dl);
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    static constexpr const char* kOp = "split";
    // MPI_Comm_split blocks; a timed barrier first makes sure every rank has
    // arrived, so a missing peer ends in an abort instead of a hang.
    barrier_for(kOp, deadline());
    MPI_Comm child = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &child), "MPI_Comm_split", kOp);
    if (child == MPI_COMM_NULL) return nullptr;
    return std::make_shared<MpiCommunicator>(child, true, timeout_);
  }

  [[noreturn]] void fail(const std::string& cause) override { abort_job(cause); }

 private:
  Clock::time_point deadline() const {
    const auto cap = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365));
    return Clock::now() + std::clamp(timeout_, std::chrono::milliseconds(0), cap);
  }

  // Polls `req` until it completes; past the deadline the job is aborted,
  // because a peer that never arrives would otherwise keep everyone waiting.
  void wait(MPI_Request& req, const char* op, Clock::time_point dl) {
    int done = 0;
    for (unsigned spins = 0;; ++spins) {
      check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test", op);
      if (done) return;
      if (Clock::now() >= dl) {
        abort_job(std::string(op) + " timed out after " + comm_detail::describe_duration(timeout_) +
                  " in a communicator of " + std::to_string(size_) +
                  " ranks (a peer did not arrive, failed or is stuck); aborting the job");
      }
      // Spin briefly for latency, then back off so that oversubscribed ranks
      // (more processes than cores) leave the CPU to the peers they wait for.
      if (spins < 64) continue;
      if (spins < 1024) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(spins < 4096 ? 20 : 200));
      }
    }
  }

  void barrier_for(const char* op, Clock::time_point dl) {
    MPI_Request req;
    check_mpi(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier", op);
    wait(req, op, dl);
  }

  void check_root(int root, const char* op) const {
    if (root < 0 || root >= size_) {
      throw Error(ErrorCode::kInvalidArgument, std::string(op) + ": root " + std::to_string(root) +
                                                   " is out of range for a group of " + std::to_string(size_) +
                                                   " ranks (rank " + std::to_string(world_rank_) + ")");
    }
  }

  std::vector<uint64_t> exchange_sizes(size_t mine, const char* op, Clock::time_point dl) {
    std::vector<uint64_t> sizes(static_cast<size_t>(size_));
    uint64_t m = mine;
    MPI_Request req;
    check_mpi(MPI_Iallgather(&m, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, comm_, &req), "MPI_Iallgather", op);
    wait(req, op, dl);
    return sizes;
  }

  static bool fits(const std::vector<uint64_t>& sizes) {
    uint64_t total = 0;
    for (uint64_t s : sizes) total += s;
    return total <= kMaxCount;
  }

  // Counts and displacements of a flat buffer holding `sizes` back to back.
  // Displacements are ints in MPI, so the total must fit one.
  static size_t layout(const std::vector<uint64_t>& sizes, std::vector<int>& counts, std::vector<int>& displs,
                       const char* op) {
    if (!fits(sizes)) {
      uint64_t total = 0;
      for (uint64_t s : sizes) total += s;
      throw_too_large(op, total);
    }
    counts.resize(sizes.size());
    displs.resize(sizes.size());
    size_t total = 0;
    for (size_t r = 0; r < sizes.size(); ++r) {
      counts[r] = to_int(sizes[r]);
      displs[r] = to_int(total);
      total += sizes[r];
    }
    return total;
  }

  static std::vector<Blob> unflatten(const std::string& flat, const std::vector<int>& counts,
                                     const std::vector<int>& displs) {
    std::vector<Blob> out(counts.size());
    for (size_t r = 0; r < counts.size(); ++r) {
      out[r].assign(flat, static_cast<size_t>(displs[r]), static_cast<size_t>(counts[r]));
    }
    return out;
  }

  // Deterministic all-reduce of m elements (m * es fits an int): slice r goes
  // to rank r, is reduced there in rank order, and the slices are gathered.
  void ordered_all_reduce(std::byte* data, size_t m, DType dtype, ReduceOp op, Clock::time_point dl) {
    static constexpr const char* kOp = "all_reduce";
    const size_t n = static_cast<size_t>(size_);
    const size_t es = dtype_size(dtype);
    const size_t chunk = (m + n - 1) / n;
    std::vector<int> scounts(n), sdispls(n), rcounts(n), rdispls(n);
    const size_t my_lo = std::min(m, static_cast<size_t>(rank_) * chunk);
    const size_t my_len = std::min(m, my_lo + chunk) - my_lo;
    for (size_t r = 0; r < n; ++r) {
      const size_t lo = std::min(m, r * chunk);
      const size_t len = std::min(m, lo + chunk) - lo;
      scounts[r] = to_int(len * es);
      sdispls[r] = to_int(lo * es);
      rcounts[r] = to_int(my_len * es);
      rdispls[r] = to_int(r * my_len * es);
    }
    std::vector<std::byte> slices(n * my_len * es);
    MPI_Request req;
    check_mpi(MPI_Ialltoallv(data, scounts.data(), sdispls.data(), MPI_BYTE, slices.data(), rcounts.data(),
                             rdispls.data(), MPI_BYTE, comm_, &req),
              "MPI_Ialltoallv", kOp);
    wait(req, kOp, dl);
    std::vector<const void*> inputs(n);
    for (size_t r = 0; r < n; ++r) inputs[r] = slices.data() + r * my_len * es;
    // The reduced slice goes straight to its place in `data`; the gather then
    // fills in the other ranks' slices around it.
    reduce_in_order(inputs.data(), size_, data + my_lo * es, my_len, dtype, op);
    check_mpi(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_BYTE, data, scounts.data(), sdispls.data(), MPI_BYTE, comm_, &req),
              "MPI_Iallgatherv", kOp);
    wait(req, kOp, dl);
  }

  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0;
  int size_ = 1;
  int world_rank_ = 0;
};

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

bool mpi_available() { return true; }

CommPtr mpi_world() {
  static std::once_flag once;
  static CommPtr world;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      // MULTIPLE: distinct communicators may be used from distinct threads
      // (e.g. a background save next to training).
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      if (rc != MPI_SUCCESS) {
        throw Error(ErrorCode::kComm, "mpi_world(): MPI_Init_thread failed with code " + std::to_string(rc));
      }
      // Finalise only what dcpp initialised; an application that initialised
      // MPI itself also finalises it.
      std::atexit(finalize_mpi);
    }
    world = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, false, std::chrono::minutes(5));
  });
  return world;
}

}  // namespace dcpp
