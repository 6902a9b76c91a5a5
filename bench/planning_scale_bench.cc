// Planning at simulated scale, no real I/O: the save and load plans of N
// ranks × T tensors (default N = 1024, 4096, 8192 and T = 1000: up to 8M
// chunks), each phase's seconds and peak memory, each N in its own child
// process so the peaks do not mix. The per-rank load plan (one rank's
// DefaultLoadPlanner set_up + create_local_plan against the full metadata)
// is measured apart from the coordinator's global save plan.
//
//   local save plans    every rank's SavePlan (what the coordinator gathers)
//   global save plan    DefaultSavePlanner::create_global_plan: dedup of the
//                       replicated items, chunk tiling checks, final plans
//   metadata            the Metadata a save of the final plans writes
//   encode / decode     encode_metadata, decode_metadata (with validation)
//   own load plan       one rank that loads its own shard (same sharding)
//   resharded load plan one rank that loads its shard of the other dim
//                       (Shard(1) of what was saved Shard(0)): it overlaps
//                       every saved chunk, N read items per tensor
//
// Usage: planning_scale_bench [--ranks 1024,4096,8192] [--tensors 1000]
// Peak memory is the process's VmHWM, reset before each phase (Linux ≥ 4.0);
// "held" is the RSS after the phase (what later phases start from).
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/planner.h"
#include "dcpp/state_dict.h"
#include "proc_memory.h"
#include "synthetic_plans.h"

namespace {

using namespace dcpp;
using Clock = std::chrono::steady_clock;

constexpr int kReplicatedPer1000 = 10;  // replicated on every rank (biases, norms)

using bench::proc_status_kib;

// Planning needs a rank and a world size, never a message (a 1-D mesh only).
class PlanningComm : public Communicator {
 public:
  PlanningComm(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "planning"; }
  void barrier() override { no(); }
  void broadcast(void*, size_t, int) override { no(); }
  void all_gather(const void*, void*, size_t) override { no(); }
  std::vector<Blob> all_gather_v(const Blob&) override { no(); }
  std::vector<Blob> gather_v(const Blob&, int) override { no(); }
  Blob scatter_v(const std::vector<Blob>&, int) override { no(); }
  std::vector<Blob> all_to_all_v(const std::vector<Blob>&) override { no(); }
  void all_reduce(void*, size_t, DType, ReduceOp) override { no(); }
  void reduce_scatter(const void*, void*, size_t, DType, ReduceOp) override { no(); }
  // A 1-D mesh splits the world into itself.
  std::shared_ptr<Communicator> split(int, int) override { return std::make_shared<PlanningComm>(rank_, size_); }
  void fail(const std::string&) override { no(); }

 private:
  [[noreturn]] static void no() { throw Error(ErrorCode::kInternal, "planning_scale_bench: no messages in planning"); }
  int rank_, size_;
};

using bench::synthetic_key;

struct Phase {
  const char* name;
  double seconds;
  double peak_gib;
  double held_gib;
  std::string note;
};

double gib(uint64_t kib) { return static_cast<double>(kib) / (1024.0 * 1024.0); }

void run(int ranks, int tensors) {
  std::vector<Phase> phases;
  auto phase = [&](const char* name, const std::function<std::string()>& fn) {
    bench::reset_peak_rss();
    const auto t0 = Clock::now();
    std::string note = fn();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    phases.push_back({name, s, gib(proc_status_kib("VmHWM")), gib(proc_status_kib("VmRSS")), note});
  };
  const int replicated = tensors * kReplicatedPer1000 / 1000;

  std::vector<SavePlan> plans;
  phase("local save plans", [&] {
    plans = bench::synthetic_local_plans(ranks, tensors, replicated);
    return std::to_string(static_cast<uint64_t>(ranks) * static_cast<uint64_t>(tensors)) + " items";
  });

  std::vector<SavePlan> finals;
  phase("global save plan", [&] {
    DefaultSavePlanner planner;
    finals = planner.create_global_plan(std::move(plans));
    std::vector<SavePlan>().swap(plans);
    uint64_t n = 0;
    for (const auto& p : finals) n += p.items.size();
    return std::to_string(n) + " chunks after dedup";
  });

  Metadata md;
  phase("metadata", [&] {
    md.dcpp_version = "bench";
    md.world_size = ranks;
    md.block_size = 1 << 20;
    for (size_t r = 0; r < finals.size(); ++r) {
      uint64_t end = 0;
      for (WriteItem& item : finals[r].items) {
        TensorMeta& tm = md.tensors[item.fqn];
        if (tm.chunks.empty()) {
          tm.dtype = item.dtype;
          tm.global_shape = item.global_shape;
          md.paths[item.fqn] = {PathElement{false, item.fqn, 0}};
        }
        StorageLocation loc = bench::synthetic_location(static_cast<int>(r), end, item.nbytes);
        tm.chunks.push_back(ChunkMeta{std::move(item.offsets), std::move(item.sizes), std::move(loc)});
        end = align_up(end + item.nbytes, kIoAlignment);
      }
      SavePlan().items.swap(finals[r].items);
    }
    std::vector<SavePlan>().swap(finals);
    return std::string();
  });

  std::vector<std::byte> encoded;
  phase("encode metadata", [&] {
    encoded = encode_metadata(md);
    return std::to_string(encoded.size() / 1000000) + " MB";
  });
  phase("decode metadata", [&] {
    Metadata back = decode_metadata(encoded.data(), encoded.size(), "bench");
    return std::to_string(back.tensors.size()) + " tensors";
  });
  std::vector<std::byte>().swap(encoded);

  // One rank's load plan against the full metadata: its DTensors on a mesh
  // of `ranks` (a communicator that only knows its rank and size: planning
  // communicates nothing).
  for (bool resharded : {false, true}) {
    const int rank = resharded ? 0 : ranks / 2;
    auto comm = std::make_shared<PlanningComm>(rank, ranks);
    DeviceMesh mesh(comm, Device::kCpu, {ranks});
    StateDict sd;
    for (int t = 0; t < tensors; ++t) {
      const TensorMeta& tm = md.tensors.at(synthetic_key(t));
      Placement p = Replicate{};
      if (t >= replicated) p = Shard{resharded ? 1 : 0};
      LocalChunk c = compute_local_shape_and_global_offset(tm.global_shape, {ranks}, {rank}, {p});
      sd.set(synthetic_key(t), DTensor(Tensor::empty(c.local_shape, tm.dtype, Device::kMeta), mesh, {p}, tm.global_shape));
    }
    phase(resharded ? "resharded load plan (rank 0)" : "own load plan (1 rank)", [&] {
      DefaultLoadPlanner planner;
      planner.set_up(sd, md, rank, false);
      LoadPlan plan = planner.create_local_plan();
      return std::to_string(plan.items.size()) + " read items";
    });
  }

  std::printf("ranks %d x tensors %d (%llu chunks)\n", ranks, tensors,
              static_cast<unsigned long long>(static_cast<uint64_t>(ranks) * static_cast<uint64_t>(tensors)));
  std::printf("  %-30s %9s %10s %10s  %s\n", "phase", "seconds", "peak GiB", "held GiB", "");
  double total = 0, peak = 0;
  for (const Phase& p : phases) {
    std::printf("  %-30s %9.3f %10.2f %10.2f  %s\n", p.name, p.seconds, p.peak_gib, p.held_gib, p.note.c_str());
    total += p.seconds;
    peak = std::max(peak, p.peak_gib);
  }
  std::printf("  %-30s %9.3f %10.2f\n", "total", total, peak);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> ranks = {1024, 4096, 8192};
  int tensors = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--ranks") {
      ranks.clear();
      for (const char* p = argv[i + 1]; *p;) {
        ranks.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else if (flag == "--tensors") {
      tensors = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--ranks 1024,4096,8192] [--tensors 1000]\n", argv[0]);
      return 2;
    }
  }
  int rc = 0;
  for (int n : ranks) {
    const pid_t pid = fork();
    if (pid == 0) {
      run(n, tensors);
      std::_Exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("ranks %d: the child failed (status %d)\n", n, status);
      rc = 1;
    }
  }
  return rc;
}
