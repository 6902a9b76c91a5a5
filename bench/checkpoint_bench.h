// dcpp's end-to-end checkpoint benchmark (`dcpp bench`, `make bench`).
//
// Builds a synthetic transformer-like sharded state dict (Colwise/Rowwise
// placements, bf16 and fp32 tensors, optimizer state on request) on N thread
// ranks — or on the MPI world under mpirun — and measures, in one run, on one
// file system and one byte count: raw direct-I/O write and read (the
// machine's own limit), dcpp save, dcpp load with the same sharding and
// resharded (N → N/2 and N → 2N ranks, the model's layout and the transposed
// one), async_save blocking time beside the synchronous save and a memcpy of
// the same bytes, peak RSS, and disk bytes read per load. Every figure is a
// median of `runs`; loads come cold and are verified outside the timed
// region. bench/README.md documents the table and the JSON fields.
//
// `dcpp bench` (src/cli/main.cc) parses the flags and calls
// run_bench_command; run_bench returns the report for other callers. Not
// thread-safe: one run at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/dtensor.h"
#include "dcpp/fs_storage.h"
#include "dcpp/state_dict.h"

namespace dcpp::bench {

struct BenchOptions {
  int ranks = 4;            // thread ranks (ignored under mpirun: the MPI world)
  int layers = 19;          // with hidden 2048: ≈ 3 GiB of model state
  int64_t hidden = 2048;
  bool optimizer = false;   // add AdamW state (exp_avg, exp_avg_sq in fp32) per weight
  std::string dir;          // where files go (empty: ./dcpp-bench-data); the same file system for every figure
  int runs = 3;             // median of this many (≥ 1)
  int write_threads = 2;    // writer threads per rank (dcpp and the raw baseline)
  int read_threads = 4;     // reader threads per rank (dcpp and the raw baseline)
  bool direct = true;       // O_DIRECT where the file system allows it
  bool compress = false;    // saves store blocks encoded (FileSystemWriterOptions::compress)
  bool reshard = true;      // the resharded loads
  bool async = true;        // async_save figures
  bool json = false;        // print JSON instead of the table
  std::string command;      // the command line, echoed in the report
  // --scale (checkpoint_scale_lib.cc): save at each of these rank counts,
  // load at the same, half and double (at most scale_max_ranks), model
  // layout and transposed. `scale_cells` limits the loads to the named
  // layouts (same_model, same_transposed, half_model, half_transposed,
  // double_model, double_transposed); empty: all.
  bool scale = false;
  std::vector<int> scale_ranks = {4, 8, 16, 32, 64};
  int scale_max_ranks = 64;
  std::vector<std::string> scale_cells;
};

// One measured figure: median and every sample, in seconds, over `bytes`.
struct Figure {
  std::string name;
  std::vector<double> samples;
  double seconds = 0;       // median
  uint64_t bytes = 0;       // bytes the figure counts (checkpoint bytes needed, or raw bytes)
  uint64_t disk_bytes_read = 0;  // loads: median disk bytes read by all ranks together
  int ranks = 0;
  std::string note;
  // The raw baseline measured next to this figure's runs (interleaved, so
  // both see the same disk on a machine whose disk speed drifts): each save
  // run follows a raw write; each load run sits between two raw reads.
  std::string baseline;
  double baseline_gib_per_s = 0;       // median of the runs' baselines
  std::vector<double> ratio_samples;   // per run: this run's GiB/s ÷ its own baseline's
  double gib_per_s() const;
  // The median of ratio_samples; 0 for figures without a baseline.
  double ratio() const;
};

struct BenchReport {
  BenchOptions options;
  int world = 0;
  std::string backend;       // "threads" or "mpi"
  std::string dir;
  std::string file_system_io;  // "direct" or "buffered (O_DIRECT refused)"
  uint64_t state_bytes = 0;    // all ranks' local tensor bytes (replicas counted per rank)
  uint64_t checkpoint_bytes = 0;  // tensor bytes in the checkpoint (replicas once)
  uint64_t peak_rss_bytes = 0;        // VmHWM of this process over the whole run
  uint64_t save_peak_rss_bytes = 0;   // VmHWM during the synchronous saves
  uint64_t rss_before_save_bytes = 0; // VmRSS just before them (the state, mostly)
  std::vector<Figure> figures;
  std::string to_table() const;
  std::string to_json() const;
  const Figure* find(const std::string& name) const;
};

BenchReport run_bench(const BenchOptions& options);
// Runs, prints the table or JSON (rank 0 under mpirun) and returns the exit
// code: 0, or 1 when a load returned wrong data or the run failed.
int run_bench_command(const BenchOptions& options);

// The scale benchmark (`dcpp bench --scale`): prints its table (rank 0
// under mpirun) and returns the exit code as run_bench_command does.
int run_scale_command(const BenchOptions& options);

// ---- building blocks, shared with `dcpp demo` and the scale benchmark ----

// One tensor of the synthetic model.
struct Spec {
  std::string key;
  Shape shape;
  DType dtype;
  Placement placement;  // the model's layout (Colwise = Shard(0), Rowwise = Shard(1))
  uint32_t salt;
};
std::vector<Spec> model_specs(const BenchOptions& o);
// Shard(0) <-> Shard(1) for matrices; vectors keep their placement.
Placement transposed(const Spec& s);

// One rank's state dict of the synthetic model, and its local tensors.
struct RankState {
  StateDict sd;
  std::vector<Tensor> locals;
  uint64_t bytes = 0;
};
// `fill`: the saved values; otherwise a sentinel a load must overwrite.
RankState build_state(const std::vector<Spec>& specs, const DeviceMesh& mesh, int world, int rank,
                      bool use_transposed, bool fill);
// False (and `bad` names the first wrong tensor) unless every local tensor holds the saved values.
bool verify_state(const RankState& st, const std::vector<Spec>& specs, int world, int rank, bool use_transposed,
                  std::string& bad);
// Drops the page cache of every file under `dir`.
void drop_cache(const std::string& dir);
// Runs fn on `world` thread ranks, or on the MPI world's first `world` ranks under mpirun.
void on_ranks(int world, bool mpi, const std::function<void(CommPtr)>& fn);
double median(std::vector<double> v);

// The raw baseline: `threads` threads write (or read) disjoint contiguous
// ranges of `path` in 16 MiB transfers, with O_DIRECT when `want_direct` and
// the file system allows it; writes end with fsync. Returns whether O_DIRECT
// was used. Throws Error(kIo) when a transfer fails.
bool raw_io(const std::string& path, uint64_t bytes, int threads, bool write, bool want_direct);
// Runs fn on every rank of `comm` between two barriers; returns rank 0's
// seconds on every rank. Collective.
double timed(Communicator& comm, const std::function<void()>& fn);
// The native reader's options of a benchmark load on `comm`: the bench's
// reader threads and direct-I/O choice.
FileSystemReaderOptions reader_options(const BenchOptions& o, CommPtr comm);

}  // namespace dcpp::bench
