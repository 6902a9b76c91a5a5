// The read engine's driver: plans this rank's reads (read_plan.h), and
// either runs them alone or — with a communicator — exchanges needs, takes
// its share of the common assignment (piece_assignment.h) and runs the
// delivery rounds (read_delivery.h); the reads themselves run in
// read_execution.cc.
#include "storage/fs/read_engine.h"

#include <deque>
#include <memory>
#include <utility>

#include "dcpp/error.h"
#include "dcpp/io_thread_pool.h"
#include "storage/fs/read_delivery.h"
#include "storage/fs/read_execution.h"
#include "storage/fs/read_plan.h"

namespace dcpp::fs_detail {
namespace {

using Failures = std::vector<std::pair<int, std::pair<ErrorCode, std::string>>>;

void write_failure(BlobWriter& w, std::exception_ptr e) {
  w.u8(1);
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    w.u8(static_cast<uint8_t>(err.code()));
    w.str(err.what());
  } catch (const std::exception& err) {
    w.u8(static_cast<uint8_t>(ErrorCode::kInternal));
    w.str(err.what());
  } catch (...) {
    w.u8(static_cast<uint8_t>(ErrorCode::kInternal));
    w.str("unknown exception");
  }
}

// Reads the status at the start of rank r's blob; a failure goes to `failures`.
bool read_ok(BlobReader& rd, int r, Failures& failures) {
  if (rd.u8() == 0) return true;
  ErrorCode code = static_cast<ErrorCode>(rd.u8());
  failures.push_back({r, {code, rd.str()}});
  return false;
}

// After an exchange: rethrows this rank's own failure. When only other ranks
// failed, returns true: this rank stops reading and returns normally, and
// the caller's status exchange (load() has one after every phase) reports
// the failing rank and its cause — so the error names the rank that failed,
// not every rank that heard of it.
bool raise_failures(std::exception_ptr mine, const Failures& others) {
  if (mine) std::rethrow_exception(mine);
  return !others.empty();
}

class Reader {
 public:
  Reader(ReadEngine& engine, const std::vector<BoxRead>& reads, const ReadEngineOptions& options)
      : engine_(engine), reads_(reads), opts_(options), plan_(engine.block_size()) {}

  void run(std::exception_ptr local_error) {
    const bool shared = opts_.comm && opts_.comm->size() > 1;
    if (!local_error) {
      try {
        engine_.add_needed(plan_.add_local(reads_));
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    if (!shared) {
      if (local_error) std::rethrow_exception(local_error);
      plan_.cut_own(engine_.rank(), opts_.max_read_bytes);
      run_ops(engine_, plan_, plan_.make_ops(engine_.rank(), opts_.max_read_bytes), opts_.threads, opts_.direct);
      return;
    }
    run_shared(local_error);
  }

 private:
  std::vector<Op> my_ops() const { return plan_.make_ops(engine_.rank(), opts_.max_read_bytes); }

  // ---- read once, deliver everywhere ----

  void run_shared(std::exception_ptr local_error) {
    Communicator& comm = *opts_.comm;
    const int world = comm.size();
    if (!local_error && !opts_.metadata) {
      local_error = std::make_exception_ptr(
          Error(ErrorCode::kInternal, "read-once delivery needs the checkpoint metadata"));
    }

    // 1. Everyone learns which blocks everyone needs.
    BlobWriter w;
    if (local_error) {
      write_failure(w, local_error);
    } else {
      w.u8(0);
      write_needs(w, plan_);
    }
    std::vector<Blob> all = comm.all_gather_v(w.take());

    // 2. The same assignment on every rank: item by item in key order.
    Needs needs;
    Failures failures;
    for (int r = 0; r < world; ++r) {
      BlobReader rd(all[static_cast<size_t>(r)], r);
      if (read_ok(rd, r, failures)) read_needs(rd, r, needs);
    }
    if (failures.empty() && !local_error) {
      try {
        assign_shared(plan_, needs, *opts_.metadata, engine_.rank(), world,
                      PieceSizes{plan_.block_size, opts_.max_read_bytes, opts_.share_piece_bytes});
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    if (!failures.empty() && raise_failures(local_error, failures)) return;

    // Every rank takes the same path: the decision depends only on what was
    // exchanged.
    if (!any_shared(needs)) {
      read_alone(local_error);
    } else {
      read_in_rounds(local_error);
    }
  }

  // Nothing to deliver (e.g. the same sharding as the save): plain reads,
  // then one status exchange so that a failure on any rank fails all.
  void read_alone(std::exception_ptr local_error) {
    Communicator& comm = *opts_.comm;
    if (!local_error) {
      try {
        run_ops(engine_, plan_, my_ops(), opts_.threads, opts_.direct);
      } catch (...) {
        local_error = std::current_exception();
      }
    }
    BlobWriter sw;
    if (local_error) {
      write_failure(sw, local_error);
    } else {
      sw.u8(0);
    }
    std::vector<Blob> status = comm.all_gather_v(sw.take());
    Failures failures;
    for (int r = 0; r < comm.size(); ++r) {
      BlobReader rd(status[static_cast<size_t>(r)], r);
      read_ok(rd, r, failures);
    }
    raise_failures(local_error, failures);
    // Another rank's failure: load()'s status exchange reports it.
  }

  // Rounds: read my share, exchange, apply what others read for me.
  // Pipelined: the reads of the next kRoundsInFlight - 1 rounds are queued
  // behind the current one's, so the reader threads never wait for the
  // exchange, and the disk never waits for a round's slowest read. The
  // pool is declared after the rounds and buffers its tasks use: its
  // destructor finishes them first, whatever way this function ends.
  void read_in_rounds(std::exception_ptr local_error) {
    constexpr size_t kRoundsInFlight = 2;
    Communicator& comm = *opts_.comm;
    const int world = comm.size();
    const int me = comm.rank();
    std::vector<Op> ops = local_error ? std::vector<Op>{} : my_ops();
    size_t next = 0;
    BufferPool buffers;
    std::deque<std::unique_ptr<Round>> rounds;  // the front one is exchanged next
    ThreadPool pool(std::max<size_t>(opts_.threads, 1));
    while (true) {
      // A rank with nothing left still takes part in the others' rounds.
      auto add_round = [&] {
        rounds.push_back(plan_round(plan_, ops, next, world, opts_.round_bytes));
        if (!local_error) start_reads(engine_, plan_, *rounds.back(), ops, opts_.direct, pool, buffers);
      };
      if (rounds.empty()) add_round();
      while (!local_error && rounds.size() < kRoundsInFlight && rounds.back()->more) add_round();
      Round& current = *rounds.front();
      if (!local_error) {
        try {
          wait_all(current.reads);
        } catch (...) {
          local_error = std::current_exception();
        }
      }
      for (int r = 0; r < world; ++r) {
        std::string& blob = current.out[static_cast<size_t>(r)];
        if (local_error) {
          BlobWriter fw;
          write_failure(fw, local_error);
          blob = fw.take();
        } else {
          blob[0] = 0;
          blob[1] = current.more ? 1 : 0;
        }
      }
      std::vector<Blob> in = comm.all_to_all_v(std::move(current.out));
      current.out.clear();

      bool anyone_more = false;
      Failures failures;
      for (int r = 0; r < world; ++r) {
        BlobReader rd(in[static_cast<size_t>(r)], r);
        if (read_ok(rd, r, failures)) anyone_more = anyone_more || rd.u8() != 0;
      }
      if ((local_error || !failures.empty()) && raise_failures(local_error, failures)) return;
      for (int r = 0; r < world; ++r) unpack_blob(engine_, plan_, in[static_cast<size_t>(r)], r, me);
      rounds.pop_front();
      if (!anyone_more) break;
    }
  }

  ReadEngine& engine_;
  const std::vector<BoxRead>& reads_;
  const ReadEngineOptions& opts_;
  ReadPlan plan_;
};

}  // namespace

ReadEngine::ReadEngine(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank)
    : fs_(fs ? std::move(fs) : default_file_system()),
      directory_(std::move(directory)),
      block_size_(block_size),
      rank_(rank) {
  if (block_size_ == 0) throw Error(ErrorCode::kInvalidArgument, "ReadEngine: block size 0");
}

void ReadEngine::read(const std::vector<BoxRead>& reads, const ReadEngineOptions& options,
                      std::exception_ptr local_error) {
  Reader(*this, reads, options).run(local_error);
}

StorageIoStats ReadEngine::stats() const {
  StorageIoStats s;
  s.bytes_read = bytes_read_;
  s.bytes_needed = bytes_needed_;
  s.bytes_sent = bytes_sent_;
  s.bytes_received = bytes_received_;
  s.io_calls = io_calls_;
  s.direct = direct_used_;
  s.buffered_fallback = fallback_;
  return s;
}

void ReadEngine::reset_stats() {
  bytes_read_ = bytes_needed_ = bytes_sent_ = bytes_received_ = io_calls_ = 0;
}

}  // namespace dcpp::fs_detail
