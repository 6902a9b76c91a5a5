// The checkpoint benchmark behind `dcpp bench` and `make bench` (checkpoint_bench.h).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "checkpoint_bench.h"
#include "dcpp/async_save.h"
#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "proc_memory.h"

namespace dcpp::bench {
namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {

uint64_t peak_rss() { return proc_status_kib("VmHWM") * 1024; }
uint64_t current_rss() { return proc_status_kib("VmRSS") * 1024; }

}  // namespace

// ---- the synthetic model (checkpoint_bench.h) ----

std::vector<Spec> model_specs(const BenchOptions& o) {
  const int64_t h = o.hidden;
  std::vector<Spec> specs;
  uint32_t salt = 1;
  auto add = [&](const std::string& key, Shape shape, DType dtype, Placement p) {
    specs.push_back({key, std::move(shape), dtype, p, salt++});
    if (o.optimizer && dtype != DType::kInt64) {
      for (const char* state : {"exp_avg", "exp_avg_sq"}) {
        specs.push_back({"optim.state." + key + "." + state, specs.back().shape, DType::kFloat32, p, salt++});
      }
    }
  };
  for (int l = 0; l < o.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "attn.qkv.weight", {3 * h, h}, DType::kBFloat16, Shard{0});
    add(p + "attn.out.weight", {h, h}, DType::kBFloat16, Shard{1});
    add(p + "mlp.up.weight", {4 * h, h}, DType::kFloat32, Shard{0});
    add(p + "mlp.up.bias", {4 * h}, DType::kFloat32, Shard{0});
    add(p + "mlp.down.weight", {h, 4 * h}, DType::kFloat32, Shard{1});
    add(p + "mlp.down.bias", {h}, DType::kFloat32, Replicate{});
    add(p + "norm.weight", {h}, DType::kFloat32, Replicate{});
  }
  return specs;
}

// Shard(0) <-> Shard(1) for matrices; vectors keep their placement.
Placement transposed(const Spec& s) {
  if (s.shape.size() != 2) return s.placement;
  if (const Shard* sh = std::get_if<Shard>(&s.placement)) return Shard{1 - sh->dim};
  return s.placement;
}

namespace {

// The value of global element `i` of a tensor: uniform in [-1, 1) with
// random mantissa bits (a hash of i and salt), so that compression meets
// its worst case (bf16 stores the value's high 16 bits, checked the same way).
inline float value_at(uint64_t i, uint32_t salt) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + salt * 0xD1B54A32D192ED03ull + 1;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<float>(static_cast<double>(x >> 40) / static_cast<double>(1u << 23) - 1.0);
}

// Fills (or, with check, compares) a local piece at `offset` of a 1-D or 2-D global tensor.
bool fill_or_check(const Tensor& local, const Shape& global_shape, const Shape& offset, uint32_t salt, bool check) {
  if (local.numel() == 0) return true;
  const int64_t rows = local.dim() == 2 ? local.size(0) : 1;
  const int64_t cols = local.dim() == 2 ? local.size(1) : local.size(0);
  const uint64_t gcols = static_cast<uint64_t>(global_shape.back());
  const uint64_t r0 = local.dim() == 2 ? static_cast<uint64_t>(offset[0]) : 0;
  const uint64_t c0 = static_cast<uint64_t>(offset.back());
  const bool bf16 = local.dtype() == DType::kBFloat16;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t base = (r0 + static_cast<uint64_t>(r)) * gcols + c0;
    if (bf16) {
      uint16_t* p = local.data<uint16_t>() + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = value_at(base + static_cast<uint64_t>(c), salt);
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        const uint16_t b = static_cast<uint16_t>(bits >> 16);  // bf16: the high half, saved and checked alike
        if (check) {
          if (p[c] != b) return false;
        } else {
          p[c] = b;
        }
      }
    } else {
      float* p = local.data<float>() + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = value_at(base + static_cast<uint64_t>(c), salt);
        if (check) {
          if (p[c] != v) return false;
        } else {
          p[c] = v;
        }
      }
    }
  }
  return true;
}

}  // namespace

// `fill`: the saved values; otherwise a sentinel (0xFF bytes: NaN) a load must overwrite.
RankState build_state(const std::vector<Spec>& specs, const DeviceMesh& mesh, int world, int rank,
                      bool use_transposed, bool fill) {
  RankState st;
  for (const Spec& s : specs) {
    const Placement p = use_transposed ? transposed(s) : s.placement;
    LocalChunk c = compute_local_shape_and_global_offset(s.shape, {world}, {rank}, {p});
    Tensor local = Tensor::empty(c.local_shape, s.dtype);
    if (fill) {
      fill_or_check(local, s.shape, c.global_offset, s.salt, false);
    } else if (local.nbytes() > 0) {
      std::memset(local.data_ptr(), 0xFF, local.nbytes());
    }
    st.bytes += local.nbytes();
    st.locals.push_back(local);
    st.sd.set(s.key, DTensor(local, mesh, {p}, s.shape));
  }
  st.sd.set("step", int64_t{1000});
  return st;
}

bool verify_state(const RankState& st, const std::vector<Spec>& specs, int world, int rank, bool use_transposed,
                  std::string& bad) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    const Placement p = use_transposed ? transposed(s) : s.placement;
    LocalChunk c = compute_local_shape_and_global_offset(s.shape, {world}, {rank}, {p});
    const Tensor& local = st.sd.at(s.key).as<DTensor>().to_local();
    if (!fill_or_check(local, s.shape, c.global_offset, s.salt, true)) {
      bad = s.key + " on rank " + std::to_string(rank);
      return false;
    }
  }
  return true;
}

// Drops the page cache of every file under `dir` (they are synced: saves fsync).
void drop_cache(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : stdfs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// ---- running on ranks ----

// Runs fn on `world` ranks: thread ranks, or the MPI world's first `world`
// ranks (the others sit the call out) under mpirun.
void on_ranks(int world, bool mpi, const std::function<void(CommPtr)>& fn) {
  if (!mpi) {
    run_ranks(world, fn);
    return;
  }
  CommPtr all = mpi_world();
  CommPtr sub = all->split(all->rank() < world ? 0 : -1, all->rank());
  if (sub) fn(sub);
  all->barrier();
}

namespace {

std::string human_bytes(double b) {
  char buf[64];
  if (b >= kGiB) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / kGiB);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024.0));
  }
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

// ---- shared with dcpp demo (checkpoint_bench.h) ----

bool raw_io(const std::string& path, uint64_t bytes, int threads, bool write, bool want_direct) {
  constexpr uint64_t kChunk = 16 << 20;  // dcpp's own largest read and write unit
  int flags = write ? (O_WRONLY | O_CREAT) : O_RDONLY;
  int fd = want_direct ? ::open(path.c_str(), flags | O_DIRECT | O_CLOEXEC, 0644) : -1;
  const bool direct = fd >= 0;
  if (fd < 0) fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorCode::kIo, "bench: cannot open " + path + ": " + std::strerror(errno));
  const uint64_t chunks = (bytes + kChunk - 1) / kChunk;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    AlignedBuffer buf(kChunk);
    std::memset(buf.data(), 0x5A, kChunk);
    for (uint64_t c; (c = next.fetch_add(1)) < chunks && !failed;) {
      const ssize_t n = write ? ::pwrite(fd, buf.data(), kChunk, static_cast<off_t>(c * kChunk))
                              : ::pread(fd, buf.data(), kChunk, static_cast<off_t>(c * kChunk));
      if (n != static_cast<ssize_t>(kChunk)) failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (write && ::fsync(fd) != 0) failed = true;
  ::close(fd);
  if (failed) throw Error(ErrorCode::kIo, "bench: raw " + std::string(write ? "write" : "read") + " of " + path + " failed");
  return direct;
}

FileSystemReaderOptions reader_options(const BenchOptions& o, CommPtr comm) {
  FileSystemReaderOptions ropts;
  ropts.io_threads = static_cast<size_t>(std::max(o.read_threads, 1));
  ropts.direct_io = o.direct;
  ropts.comm = std::move(comm);
  return ropts;
}

double timed(Communicator& comm, const std::function<void()>& fn) {
  comm.barrier();
  const auto t0 = Clock::now();
  fn();
  comm.barrier();
  double t = seconds_since(t0);
  comm.broadcast(&t, sizeof t, 0);
  return t;
}

double Figure::gib_per_s() const { return seconds > 0 ? static_cast<double>(bytes) / kGiB / seconds : 0; }

double Figure::ratio() const { return median(ratio_samples); }

const Figure* BenchReport::find(const std::string& name) const {
  for (const auto& f : figures) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

BenchReport run_bench(const BenchOptions& in) {
  BenchOptions o = in;
  o.runs = std::max(o.runs, 1);
  BenchReport report;
  report.options = o;
  const bool mpi = launched_by_mpirun() && mpi_available();
  CommPtr world_comm = mpi ? mpi_world() : nullptr;
  const int n = mpi ? world_comm->size() : std::max(o.ranks, 1);
  const bool root = !mpi || world_comm->rank() == 0;
  report.world = n;
  report.backend = mpi ? "mpi" : "threads";
  report.dir = o.dir.empty() ? (stdfs::current_path() / "dcpp-bench-data").string() : o.dir;
  const std::string dir = report.dir;
  if (root) {
    stdfs::remove_all(dir);
    stdfs::create_directories(dir);
  }
  if (mpi) world_comm->barrier();
  const std::vector<Spec> specs = model_specs(o);
  for (const Spec& s : specs) {
    uint64_t numel = 1;
    for (int64_t d : s.shape) numel *= static_cast<uint64_t>(d);
    report.checkpoint_bytes += numel * dtype_size(s.dtype);
  }

  std::mutex mu;
  auto add_figure = [&](Figure f) {
    f.seconds = median(f.samples);
    std::lock_guard lock(mu);
    report.figures.push_back(std::move(f));
  };
  const std::string ckpt = dir + "/ckpt";
  const uint64_t raw_per_rank = align_up((report.checkpoint_bytes + n - 1) / n, 16 << 20);

  FileSystemWriterOptions wopts;
  wopts.direct_io = o.direct;
  wopts.io_threads = static_cast<size_t>(std::max(o.write_threads, 1));
  wopts.compress = o.compress;

  // ---- phase 1: N ranks hold the state; raw I/O, saves, async, same-sharding loads ----
  on_ranks(n, mpi, [&](CommPtr comm) {
    const int rank = comm->rank();
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {n});
    RankState st = build_state(specs, mesh, n, rank, false, true);
    uint64_t state_total = st.bytes;
    comm->all_reduce(&state_total, 1, DType::kInt64, ReduceOp::kSum);
    if (rank == 0) report.state_bytes = state_total;

    // Raw direct write and read of the same byte count, interleaved with the
    // synchronous saves (each into a fresh directory); peak RSS around the saves.
    Figure raw_w{"raw_write", {}, 0, raw_per_rank * static_cast<uint64_t>(n), 0, n, ""};
    Figure raw_r{"raw_read", {}, 0, raw_per_rank * static_cast<uint64_t>(n), 0, n, ""};
    Figure save_f{"save", {}, 0, report.checkpoint_bytes, 0, n, ""};
    const std::string raw = dir + "/raw-" + std::to_string(rank) + ".bin";
    std::atomic<bool> direct_ok{true};
    uint64_t save_peak = 0;
    for (int run = 0; run < o.runs; ++run) {
      ::unlink(raw.c_str());
      raw_w.samples.push_back(timed(*comm, [&] {
        if (!raw_io(raw, raw_per_rank, o.write_threads, true, o.direct)) direct_ok = false;
      }));
      drop_cache(raw);
      raw_r.samples.push_back(timed(*comm, [&] { raw_io(raw, raw_per_rank, o.read_threads, false, o.direct); }));
      const std::string path = ckpt + "-" + std::to_string(run);
      comm->barrier();
      if (rank == 0) {
        if (run == 0) report.rss_before_save_bytes = current_rss();
        reset_peak_rss();
      }
      save_f.samples.push_back(timed(*comm, [&] {
        FileSystemWriter writer(path, wopts);
        save(st.sd, writer, SaveOptions{.comm = comm});
      }));
      if (rank == 0) save_peak = std::max(save_peak, peak_rss());
    }
    comm->barrier();
    if (rank == 0) {
      report.file_system_io = direct_ok ? "direct" : "buffered (O_DIRECT refused)";
      report.save_peak_rss_bytes = save_peak;
      for (int run = 0; run + 1 < o.runs; ++run) stdfs::remove_all(ckpt + "-" + std::to_string(run));
      stdfs::rename(ckpt + "-" + std::to_string(o.runs - 1), ckpt);
      Figure w = raw_w;
      w.seconds = median(w.samples);
      save_f.baseline = "raw_write";
      save_f.baseline_gib_per_s = w.gib_per_s();
      for (size_t run = 0; run < save_f.samples.size(); ++run) {
        const double save_rate = static_cast<double>(save_f.bytes) / save_f.samples[run];
        const double raw_rate = static_cast<double>(raw_w.bytes) / raw_w.samples[run];
        save_f.ratio_samples.push_back(save_rate / raw_rate);
      }
      add_figure(raw_w);
      add_figure(raw_r);
      add_figure(save_f);
    }
    comm->barrier();

    // async_save: blocking time, total time, and a memcpy of the same bytes.
    if (o.async) {
      Figure block{"async_save_blocking", {}, 0, report.state_bytes, 0, n, ""};
      Figure total{"async_save_total", {}, 0, report.checkpoint_bytes, 0, n, ""};
      Figure first{"async_save_first_call_blocking", {}, 0, report.state_bytes, 0, n,
                   "no reserve(): includes allocating and faulting in the staging buffers"};
      Figure reserve{"async_reserve", {}, 0, report.state_bytes, 0, n,
                     "AsyncSaver::reserve: allocates and faults in the staging buffers, splits the communicator"};
      Figure first_reserved{"async_save_first_call_after_reserve_blocking", {}, 0, report.state_bytes, 0, n, ""};
      Figure copy{"memcpy_state", {}, 0, report.state_bytes, 0, n, "each rank copies its local tensors into a warm buffer"};
      // One async save: its blocking time and (when `total_to` is set) the time until it is on disk.
      auto async_run = [&](AsyncSaver& saver, const std::string& path, Figure& blocking, Figure* total_to) {
        std::future<void> done;
        const double t_block = timed(*comm, [&] { done = saver.save(st.sd, path, SaveOptions{.comm = comm}, wopts); });
        comm->barrier();
        const auto t0 = Clock::now();
        done.get();
        comm->barrier();
        blocking.samples.push_back(t_block);
        if (total_to) total_to->samples.push_back(t_block + seconds_since(t0));
        comm->barrier();
        if (rank == 0) stdfs::remove_all(path);
      };
      {
        AsyncSaver fresh;  // freed before the next saver allocates its own buffers
        async_run(fresh, dir + "/async-fresh", first, nullptr);
      }
      AsyncSaver saver;
      reserve.samples.push_back(timed(*comm, [&] { saver.reserve(st.sd, SaveOptions{.comm = comm}); }));
      async_run(saver, dir + "/async-first", first_reserved, nullptr);
      for (int run = 0; run < o.runs; ++run) async_run(saver, dir + "/async-" + std::to_string(run), block, &total);
      AlignedBuffer target(static_cast<size_t>(std::max<uint64_t>(st.bytes, 1)));
      std::memset(target.data(), 0, target.size());
      for (int run = 0; run < o.runs; ++run) {
        copy.samples.push_back(timed(*comm, [&] {
          size_t at = 0;
          for (const Tensor& t : st.locals) {
            std::memcpy(target.data() + at, t.data_ptr(), t.nbytes());
            at += t.nbytes();
          }
        }));
      }
      if (rank == 0) {
        add_figure(first);
        add_figure(reserve);
        add_figure(first_reserved);
        add_figure(block);
        add_figure(total);
        add_figure(copy);
      }
    }
  });

  // ---- loads: same sharding, then resharded; cold, verified after timing ----
  // A raw read of the raw files (written by the N ranks in phase 1) right
  // before each load run: the load's baseline under the same conditions.
  std::vector<double> paired_raw;
  auto raw_read_sample = [&]() {
    double t = 0;
    on_ranks(n, mpi, [&](CommPtr comm) {
      const std::string raw = dir + "/raw-" + std::to_string(comm->rank()) + ".bin";
      drop_cache(raw);
      const double s = timed(*comm, [&] { raw_io(raw, raw_per_rank, o.read_threads, false, o.direct); });
      if (comm->rank() == 0) t = s;
    });
    paired_raw.push_back(t);
    return t;
  };
  auto measure_load = [&](const std::string& name, int world, bool use_transposed) {
    Figure f{name, {}, 0, report.checkpoint_bytes, 0, world, ""};
    std::vector<double> disk, raw_samples;
    std::atomic<bool> ok{true};
    std::string bad;
    std::mutex bad_mu;
    raw_samples.push_back(raw_read_sample());
    for (int run = 0; run < o.runs; ++run) {
      std::atomic<uint64_t> read_bytes{0};
      on_ranks(world, mpi, [&](CommPtr comm) {
        DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
        RankState st = build_state(specs, mesh, world, comm->rank(), use_transposed, false);
        if (comm->rank() == 0) drop_cache(ckpt);
        FileSystemReader reader(ckpt, reader_options(o, comm));
        const double t = timed(*comm, [&] { load(st.sd, reader, LoadOptions{.comm = comm}); });
        uint64_t mine = reader.stats().bytes_read;
        comm->all_reduce(&mine, 1, DType::kInt64, ReduceOp::kSum);
        std::string why;
        if (!verify_state(st, specs, world, comm->rank(), use_transposed, why)) {
          ok = false;
          std::lock_guard lock(bad_mu);
          bad = why;
        }
        if (comm->rank() == 0) {
          f.samples.push_back(t);
          read_bytes = mine;
        }
      });
      disk.push_back(static_cast<double>(read_bytes.load()));
      raw_samples.push_back(raw_read_sample());
    }
    // Run i's baseline: the mean time of the raw reads just before and just after it.
    const double raw_bytes = static_cast<double>(raw_per_rank * static_cast<uint64_t>(n));
    std::vector<double> baselines;
    for (size_t run = 0; run < f.samples.size(); ++run) {
      const double raw_rate = raw_bytes / ((raw_samples[run] + raw_samples[run + 1]) / 2);
      baselines.push_back(raw_rate / kGiB);
      f.ratio_samples.push_back(static_cast<double>(f.bytes) / f.samples[run] / raw_rate);
    }
    f.disk_bytes_read = static_cast<uint64_t>(median(disk));
    f.note = ok ? "verified" : "WRONG DATA: " + bad;
    f.baseline = "raw_read";
    f.baseline_gib_per_s = median(baselines);
    if (root) add_figure(f);
  };
  measure_load("load_same", n, false);
  if (o.reshard) {
    if (n >= 2) {
      measure_load("load_to_half_model_layout", n / 2, false);
      measure_load("load_to_half_transposed", n / 2, true);
    }
    if (!mpi) {
      measure_load("load_to_double_model_layout", 2 * n, false);
      measure_load("load_to_double_transposed", 2 * n, true);
    }
  }
  // Every raw read sample, the phase-1 ones and those paired with the loads.
  for (Figure& f : report.figures) {
    if (f.name == "raw_read") {
      f.samples.insert(f.samples.end(), paired_raw.begin(), paired_raw.end());
      f.seconds = median(f.samples);
    }
  }
  report.peak_rss_bytes = peak_rss();
  if (root) stdfs::remove_all(dir);
  return report;
}

std::string BenchReport::to_table() const {
  std::ostringstream os;
  char line[512];
  const Figure* mc = find("memcpy_state");
  os << "dcpp bench: " << world << " " << backend << " ranks, " << options.layers << " layers, hidden "
     << options.hidden << (options.optimizer ? ", with optimizer state" : "") << "\n";
  os << "  checkpoint " << human_bytes(static_cast<double>(checkpoint_bytes)) << " (state on all ranks "
     << human_bytes(static_cast<double>(state_bytes)) << "), dir " << dir << ", I/O " << file_system_io
     << ", median of " << options.runs << " runs\n";
  if (!options.command.empty()) os << "  command: " << options.command << "\n";
  std::snprintf(line, sizeof line, "%-32s %6s %10s %10s %8s %12s  %s\n", "figure", "ranks", "seconds", "GiB/s",
                "ratio", "disk read", "vs");
  os << line;
  for (const Figure& f : figures) {
    double ratio = f.ratio();
    std::string vs;
    if (f.name == "save") {
      vs = "x paired raw_write (target >= 0.85)";
    } else if (f.name.rfind("load", 0) == 0) {
      vs = "x paired raw_read (target >= 0.85); disk/needed " +
           std::to_string(static_cast<double>(f.disk_bytes_read) / static_cast<double>(f.bytes)).substr(0, 5) +
           " (target <= 1.1); " + f.note;
    } else if (f.name.rfind("async_", 0) == 0 && f.name != "async_save_total" && mc) {
      ratio = f.seconds / mc->seconds;
      const bool target = f.name == "async_save_blocking" || f.name == "async_save_first_call_after_reserve_blocking";
      vs = target ? "x memcpy time (target <= 1.5)" : "x memcpy time (no target: " + f.note + ")";
    }
    std::snprintf(line, sizeof line, "%-32s %6d %10.3f %10.3f %8s %12s  %s\n", f.name.c_str(), f.ranks, f.seconds,
                  f.gib_per_s(), ratio > 0 ? std::to_string(ratio).substr(0, 5).c_str() : "",
                  f.disk_bytes_read ? human_bytes(static_cast<double>(f.disk_bytes_read)).c_str() : "", vs.c_str());
    os << line;
  }
  const double per_rank_state = static_cast<double>(state_bytes) / world;
  const double per_rank_peak = static_cast<double>(save_peak_rss_bytes) / world;
  std::snprintf(line, sizeof line,
                "sync save peak RSS: %s per rank (state %s per rank; target <= state + 256 MiB + staging); "
                "whole run peak %s\n",
                human_bytes(per_rank_peak).c_str(), human_bytes(per_rank_state).c_str(),
                human_bytes(static_cast<double>(peak_rss_bytes)).c_str());
  os << line;
  return os.str();
}

std::string BenchReport::to_json() const {
  std::ostringstream os;
  os.precision(6);
  os << "{\n  \"world\": " << world << ",\n  \"backend\": \"" << backend << "\",\n  \"layers\": " << options.layers
     << ",\n  \"hidden\": " << options.hidden << ",\n  \"optimizer\": " << (options.optimizer ? "true" : "false")
     << ",\n  \"runs\": " << options.runs << ",\n  \"write_threads\": " << options.write_threads
     << ",\n  \"read_threads\": " << options.read_threads << ",\n  \"dir\": \"" << json_escape(dir)
     << "\",\n  \"io\": \"" << json_escape(file_system_io) << "\",\n  \"command\": \"" << json_escape(options.command)
     << "\",\n  \"state_bytes\": " << state_bytes << ",\n  \"checkpoint_bytes\": " << checkpoint_bytes
     << ",\n  \"rss_before_save_bytes\": " << rss_before_save_bytes
     << ",\n  \"save_peak_rss_bytes\": " << save_peak_rss_bytes << ",\n  \"peak_rss_bytes\": " << peak_rss_bytes
     << ",\n  \"figures\": {";
  for (size_t i = 0; i < figures.size(); ++i) {
    const Figure& f = figures[i];
    os << (i ? "," : "") << "\n    \"" << f.name << "\": {\"seconds\": " << f.seconds << ", \"gib_per_s\": "
       << f.gib_per_s() << ", \"bytes\": " << f.bytes << ", \"ranks\": " << f.ranks
       << ", \"disk_bytes_read\": " << f.disk_bytes_read << ", \"baseline\": \"" << f.baseline
       << "\", \"baseline_gib_per_s\": " << f.baseline_gib_per_s << ", \"ratio\": " << f.ratio()
       << ", \"note\": \"" << json_escape(f.note)
       << "\", \"samples\": [";
    for (size_t k = 0; k < f.samples.size(); ++k) os << (k ? ", " : "") << f.samples[k];
    os << "], \"ratio_samples\": [";
    for (size_t k = 0; k < f.ratio_samples.size(); ++k) os << (k ? ", " : "") << f.ratio_samples[k];
    os << "]}";
  }
  os << "\n  }\n}\n";
  return os.str();
}

int run_bench_command(const BenchOptions& o) {
  try {
    BenchReport report = run_bench(o);
    const bool root = !(launched_by_mpirun() && mpi_available()) || mpi_world()->rank() == 0;
    if (root) std::fputs((o.json ? report.to_json() : report.to_table()).c_str(), stdout);
    for (const Figure& f : report.figures) {
      if (f.note.rfind("WRONG", 0) == 0) return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcpp bench: %s\n", e.what());
    return 1;
  }
}

}  // namespace dcpp::bench
