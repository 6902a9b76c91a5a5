// The read engine's driver: plans this rank's reads (read_plan.h), and
// either runs them alone or — with a communicator — exchanges needs, takes
// its share of the common assignment (piece_assignment.h) and runs the
// delivery rounds (read_delivery.h); the reads themselves run in
// read_execution.cc.
#include "storage/fs/read_engine.h"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "comm/rank_status.h"
#include "dcpp/error.h"
#include "io/thread_pool.h"
#include "storage/fs/read_delivery.h"
#include "storage/fs/read_execution.h"
#include "storage/fs/read_plan.h"

namespace dcpp::fs_detail {
namespace {

using comm_detail::RankFailure;
using comm_detail::write_status;

// After an exchange: rethrows this rank's own failure. When only other ranks
// failed, returns true: this rank stops reading and returns normally, and
// the caller's status exchange (load() has one after every phase) reports
// the failing rank and its cause — so the error names the rank that failed,
// not every rank that heard of it.
bool stop_for_failures(std::exception_ptr mine, const std::vector<RankFailure>& others) {
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
      run_ops(engine_, plan_, my_ops(), opts_.threads, opts_.direct);
      return;
    }
    run_shared(local_error);
  }

 private:
  std::vector<Op> my_ops() const { return plan_.make_ops(engine_.rank(), opts_.max_read_bytes); }

  std::optional<RankFailure> my_status(std::exception_ptr local_error) const {
    if (!local_error) return std::nullopt;
    return comm_detail::failure_of(opts_.comm->rank(), local_error);
  }

  // ---- read once, deliver everywhere ----

  void run_shared(std::exception_ptr local_error) {
    Communicator& comm = *opts_.comm;
    const int world = comm.size();
    const int me = comm.rank();
    if (!local_error && !opts_.metadata) {
      local_error = std::make_exception_ptr(
          Error(ErrorCode::kInternal, "read-once delivery needs the checkpoint metadata"));
    }
    // Runs a step unless this rank already failed; a throw becomes its failure.
    auto step = [&](const std::function<void()>& fn) {
      if (local_error) return;
      try {
        fn();
      } catch (...) {
        local_error = std::current_exception();
      }
    };
    // One message per rank, opening with this rank's status (alone when it failed).
    auto messages = [&](std::vector<WireWriter>& bodies, const std::function<void(WireWriter&)>& header) {
      std::vector<Blob> out(static_cast<size_t>(world));
      for (size_t r = 0; r < out.size(); ++r) {
        WireWriter w;
        write_status(w, my_status(local_error));
        if (!local_error) {
          if (header) header(w);
          std::string body = bodies[r].take();
          w.bytes(body.data(), body.size());
        }
        out[r] = w.take();
      }
      return out;
    };

    // 1. Each rank sends its needs of each item to the item's home.
    std::optional<ChunkIds> ids;
    std::vector<WireWriter> to_home(static_cast<size_t>(world));
    step([&] {
      ids.emplace(*opts_.metadata);
      write_needs(to_home, plan_, *ids);
    });
    const std::vector<Blob> at_home = comm.all_to_all_v(messages(to_home, nullptr));
    HomeItems home;
    std::vector<RankFailure> failures;
    try {
      failures = comm_detail::read_statuses(at_home, [&](WireReader& rd, int r) {
        if (!local_error) home.read(rd, r, at_home[static_cast<size_t>(r)]);
      });
    } catch (...) {
      if (!local_error) local_error = std::current_exception();
    }
    if (!failures.empty() && stop_for_failures(local_error, failures)) return;

    // 2. Each home assigns its items and tells every owner what it reads.
    std::vector<WireWriter> to_owner(static_cast<size_t>(world));
    bool shared_here = false;
    step([&] {
      shared_here = home.assign(to_owner, *ids, me, world, plan_.block_size,
                                PieceSizes{plan_.block_size, opts_.max_read_bytes, opts_.share_piece_bytes});
    });
    const std::vector<Blob> assigned =
        comm.all_to_all_v(messages(to_owner, [&](WireWriter& w) { w.u8(shared_here ? 1 : 0); }));
    bool shared = false;
    failures = comm_detail::read_statuses(assigned, [&](WireReader& rd, int r) {
      shared = rd.u8() != 0 || shared;
      step([&] { read_assignment(rd, r, plan_, *ids, me); });
    });
    if (!failures.empty() && stop_for_failures(local_error, failures)) return;

    // Every rank takes the same path: every home told every rank whether
    // any of its pieces is delivered.
    if (!shared) {
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
    WireWriter w;
    write_status(w, my_status(local_error));
    stop_for_failures(local_error, comm_detail::read_statuses(comm.all_gather_v(w.take())));
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
      if (!local_error) {
        uint64_t messages = 0;
        for (int r = 0; r < world; ++r) {
          messages += r != me && current.out[static_cast<size_t>(r)].size() > kRoundHeaderBytes ? 1 : 0;
        }
        engine_.add_exchange(current.pieces, messages);
      }
      for (int r = 0; r < world; ++r) {
        std::string& blob = current.out[static_cast<size_t>(r)];
        if (local_error) {
          WireWriter fw;
          write_status(fw, my_status(local_error));
          blob = fw.take();
        } else {
          blob[kRoundMoreByte] = current.more ? 1 : 0;  // the status before it: no failures
        }
      }
      std::vector<Blob> in = comm.all_to_all_v(std::move(current.out));
      current.out.clear();

      bool anyone_more = false;
      const std::vector<RankFailure> failures = comm_detail::read_statuses(in, [&](WireReader&, int r) {
        anyone_more = anyone_more || WireReader(in[static_cast<size_t>(r)], r, kRoundMoreByte).u8() != 0;
      });
      if ((local_error || !failures.empty()) && stop_for_failures(local_error, failures)) return;
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
  s.pieces_sent = pieces_sent_;
  s.messages_sent = messages_sent_;
  s.exchange_rounds = exchange_rounds_;
  s.direct = direct_used_;
  s.buffered_fallback = fallback_;
  return s;
}

void ReadEngine::reset_stats() {
  bytes_read_ = bytes_needed_ = bytes_sent_ = bytes_received_ = io_calls_ = 0;
  pieces_sent_ = messages_sent_ = exchange_rounds_ = 0;
}

}  // namespace dcpp::fs_detail
