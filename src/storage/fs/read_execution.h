// Execution of the read engine's plan: the reader threads run each op — one
// pread of whole blocks into a pooled aligned buffer, every block verified
// against its checksum, then the box elements copied into this rank's
// destinations and packed for the ranks it reads for.
//
// The file I/O itself (opening data files, preads, checksum checks) is in
// ReadEngine's members, defined in read_execution.cc.
// Thread-safety: BufferPool and run_op may be used from several threads at
// once; the plan and the deliveries are only read.
#pragma once

#include <cstddef>
#include <future>
#include <mutex>
#include <vector>

#include "dcpp/io.h"
#include "io/thread_pool.h"
#include "storage/fs/read_delivery.h"
#include "storage/fs/read_plan.h"

namespace dcpp::fs_detail {

// Aligned buffers reused across ops (page faults on fresh 16 MiB buffers cost
// more than the copy they would feed).
class BufferPool {
 public:
  AlignedBuffer acquire(size_t size);
  void release(AlignedBuffer b);

 private:
  std::mutex mutex_;
  std::vector<AlignedBuffer> free_;
};

// Waits for every future (no task may outlive what it writes), then
// rethrows the first failure.
void wait_all(std::vector<std::future<void>>& futures);

// Reads, verifies and applies one op; `outgoing` (may be null) receives the
// bytes of pieces other ranks need, at the positions laid out for them.
void run_op(ReadEngine& engine, const ReadPlan& plan, const Op& op, bool direct, BufferPool& buffers,
            const Deliveries* outgoing);

// Runs `ops` on up to `threads` threads (on the calling thread for one).
void run_ops(ReadEngine& engine, const ReadPlan& plan, const std::vector<Op>& ops, size_t threads, bool direct);

// Queues the reads of `round` on `pool`; their futures go into round.reads.
void start_reads(ReadEngine& engine, const ReadPlan& plan, Round& round, const std::vector<Op>& ops, bool direct,
                 ThreadPool& pool, BufferPool& buffers);

}  // namespace dcpp::fs_detail
