// The scale benchmark behind `dcpp bench --scale` (checkpoint_bench.h): the
// same checkpoint bytes saved at 4 … 64 ranks and loaded at the same, half
// and double rank count, in the model's layout and transposed, each load
// beside a raw direct read of the same byte count by the same ranks. It
// measures how load cost grows with ranks: seconds, × raw read, and the
// pieces and messages the read-once delivery exchanged.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

#include "checkpoint_bench.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"

namespace dcpp::bench {
namespace {

namespace stdfs = std::filesystem;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr uint64_t kTransfer = 16 << 20;

// Reads file bytes [begin, end) with `threads` threads in transfers of at
// most 16 MiB (O_DIRECT when `direct`; offsets are 4096-aligned).
void raw_read_range(const std::string& path, uint64_t begin, uint64_t end, int threads, bool direct) {
  int fd = direct ? ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC) : -1;
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIo, "bench: cannot open " + path + ": " + std::strerror(errno));
  std::atomic<uint64_t> next{begin};
  std::atomic<bool> failed{false};
  auto work = [&] {
    AlignedBuffer buf(kTransfer);
    for (uint64_t at; (at = next.fetch_add(kTransfer)) < end && !failed;) {
      const size_t n = static_cast<size_t>(std::min(kTransfer, end - at));
      if (::pread(fd, buf.data(), n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  ::close(fd);
  if (failed) throw Error(ErrorCode::kIo, "bench: raw read of " + path + " failed");
}

struct Layout {
  const char* name;
  int num, den;  // load ranks = save ranks * num / den
  bool transposed;
};
constexpr Layout kLayouts[] = {{"same_model", 1, 1, false},   {"same_transposed", 1, 1, true},
                               {"half_model", 1, 2, false},   {"half_transposed", 1, 2, true},
                               {"double_model", 2, 1, false}, {"double_transposed", 2, 1, true}};

struct Cell {
  int save_ranks = 0;
  int load_ranks = 0;
  std::string layout;
  double seconds = 0;      // median load
  double raw_seconds = 0;  // median of the paired raw reads
  double ratio = 0;        // median of per-run (load rate / paired raw rate)
  uint64_t pieces = 0;     // deliveries sent, all ranks (one run)
  uint64_t messages = 0;   // non-empty messages to other ranks, all ranks
  uint64_t rounds = 0;     // exchange rounds (rank 0)
  bool ok = true;
};

}  // namespace

int run_scale_command(const BenchOptions& in) {
  BenchOptions o = in;
  o.runs = std::max(o.runs, 1);
  const bool mpi = launched_by_mpirun() && mpi_available();
  CommPtr world_comm = mpi ? mpi_world() : nullptr;
  const int limit = mpi ? world_comm->size() : o.scale_max_ranks;
  const bool root = !mpi || world_comm->rank() == 0;
  const std::string dir = o.dir.empty() ? (stdfs::current_path() / "dcpp-bench-data").string() : o.dir;
  const std::vector<Spec> specs = model_specs(o);
  uint64_t ckpt_bytes = 0;
  for (const Spec& s : specs) ckpt_bytes += static_cast<uint64_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
  const uint64_t raw_bytes = align_up(ckpt_bytes, kTransfer);
  const std::string raw = dir + "/raw.bin";
  try {
    if (root) {
      stdfs::remove_all(dir);
      stdfs::create_directories(dir);
      raw_io(raw, raw_bytes, std::max(o.write_threads, 1), true, o.direct);
    }
    if (mpi) world_comm->barrier();

    // The raw baseline of a load at `world` ranks: each reads its share of the file.
    auto raw_sample = [&](int world) {
      double t = 0;
      on_ranks(world, mpi, [&](CommPtr comm) {
        if (comm->rank() == 0) drop_cache(raw);
        const uint64_t share = align_up((raw_bytes + world - 1) / world, 4096);
        const uint64_t b = std::min(raw_bytes, share * comm->rank());
        const uint64_t e = std::min(raw_bytes, b + share);
        const double s = timed(*comm, [&] { raw_read_range(raw, b, e, o.read_threads, o.direct); });
        if (comm->rank() == 0) t = s;
      });
      return t;
    };

    std::vector<Cell> cells;
    std::vector<std::pair<int, double>> saves;
    for (int n : o.scale_ranks) {
      if (n < 1 || n > limit) continue;
      const std::string ckpt = dir + "/ckpt-" + std::to_string(n);
      std::vector<double> save_s;
      on_ranks(n, mpi, [&](CommPtr comm) {
        DeviceMesh mesh = init_device_mesh(comm, "cpu", {n});
        RankState st = build_state(specs, mesh, n, comm->rank(), false, true);
        FileSystemWriterOptions wopts;
        wopts.direct_io = o.direct;
        wopts.io_threads = static_cast<size_t>(std::max(o.write_threads, 1));
        const double t = timed(*comm, [&] {
          FileSystemWriter writer(ckpt, wopts);
          save(st.sd, writer, SaveOptions{.comm = comm});
        });
        if (comm->rank() == 0) save_s.push_back(t);
      });
      saves.push_back({n, save_s.empty() ? 0 : save_s.front()});
      for (const Layout& layout : kLayouts) {
        if (!o.scale_cells.empty() &&
            std::find(o.scale_cells.begin(), o.scale_cells.end(), layout.name) == o.scale_cells.end()) {
          continue;
        }
        const int m = n * layout.num / layout.den;
        if (m < 1 || m > limit || (layout.den == 2 && n < 2)) continue;
        Cell cell{n, m, layout.name};
        std::vector<double> loads, raws{raw_sample(m)}, ratios;
        for (int run = 0; run < o.runs; ++run) {
          std::atomic<uint64_t> pieces{0}, messages{0}, rounds{0};
          std::atomic<bool> ok{true};
          double t = 0;
          on_ranks(m, mpi, [&](CommPtr comm) {
            DeviceMesh mesh = init_device_mesh(comm, "cpu", {m});
            RankState st = build_state(specs, mesh, m, comm->rank(), layout.transposed, false);
            if (comm->rank() == 0) drop_cache(ckpt);
            FileSystemReader reader(ckpt, reader_options(o, comm));
            const double s = timed(*comm, [&] { load(st.sd, reader, LoadOptions{.comm = comm}); });
            uint64_t counts[2] = {reader.stats().pieces_sent, reader.stats().messages_sent};
            comm->all_reduce(counts, 2, DType::kInt64, ReduceOp::kSum);
            std::string why;
            uint64_t bad = verify_state(st, specs, m, comm->rank(), layout.transposed, why) ? 0 : 1;
            comm->all_reduce(&bad, 1, DType::kInt64, ReduceOp::kSum);
            if (comm->rank() == 0) {
              t = s;
              pieces = counts[0];
              messages = counts[1];
              rounds = reader.stats().exchange_rounds;
              if (bad) ok = false;
            }
          });
          loads.push_back(t);
          raws.push_back(raw_sample(m));
          const double paired = (raws[raws.size() - 2] + raws.back()) / 2;
          ratios.push_back((static_cast<double>(ckpt_bytes) / t) / (static_cast<double>(raw_bytes) / paired));
          cell.pieces = pieces;
          cell.messages = messages;
          cell.rounds = rounds;
          cell.ok = cell.ok && ok;
        }
        cell.seconds = median(loads);
        cell.raw_seconds = median(raws) * static_cast<double>(ckpt_bytes) / static_cast<double>(raw_bytes);
        cell.ratio = median(ratios);
        cells.push_back(cell);
        if (root && !o.json) {
          std::fprintf(stderr, "  %d -> %d %s: %.3f s, %.3f x raw read\n", n, m, layout.name, cell.seconds,
                       cell.ratio);
        }
      }
      if (root) stdfs::remove_all(ckpt);
      if (mpi) world_comm->barrier();
    }
    if (root) stdfs::remove_all(dir);

    bool all_ok = true;
    for (const Cell& c : cells) all_ok = all_ok && c.ok;
    if (root) {
      std::ostringstream os;
      char line[512];
      if (o.json) {
        os << "{\n  \"backend\": \"" << (mpi ? "mpi" : "threads") << "\",\n  \"checkpoint_bytes\": " << ckpt_bytes
           << ",\n  \"runs\": " << o.runs << ",\n  \"saves\": [";
        for (size_t i = 0; i < saves.size(); ++i) {
          os << (i ? ", " : "") << "{\"ranks\": " << saves[i].first << ", \"seconds\": " << saves[i].second << "}";
        }
        os << "],\n  \"loads\": [";
        for (size_t i = 0; i < cells.size(); ++i) {
          const Cell& c = cells[i];
          os << (i ? "," : "") << "\n    {\"save_ranks\": " << c.save_ranks << ", \"load_ranks\": " << c.load_ranks
             << ", \"layout\": \"" << c.layout << "\", \"seconds\": " << c.seconds
             << ", \"raw_read_seconds\": " << c.raw_seconds << ", \"ratio\": " << c.ratio
             << ", \"pieces\": " << c.pieces << ", \"messages\": " << c.messages << ", \"rounds\": " << c.rounds
             << ", \"verified\": " << (c.ok ? "true" : "false") << "}";
        }
        os << "\n  ]\n}\n";
      } else {
        os << "dcpp bench --scale: " << (mpi ? "mpi" : "thread") << " ranks, " << o.layers << " layers, hidden "
           << o.hidden << ", checkpoint " << static_cast<double>(ckpt_bytes) / kMiB << " MiB, median of " << o.runs
           << " runs\n";
        if (!o.command.empty()) os << "  command: " << o.command << "\n";
        os << "  raw read: the load's ranks read the same byte count from one file, right before and after each run\n";
        for (const auto& [n, s] : saves) {
          std::snprintf(line, sizeof line, "  save at %d ranks: %.3f s\n", n, s);
          os << line;
        }
        std::snprintf(line, sizeof line, "%5s %5s  %-18s %9s %9s %8s %8s %9s %9s %7s  %s\n", "save", "load", "layout",
                      "seconds", "raw s", "x raw", "x model", "pieces", "messages", "rounds", "");
        os << line;
        for (const Cell& c : cells) {
          std::string vs_model;
          if (c.layout.find("transposed") != std::string::npos) {
            const std::string model = c.layout.substr(0, c.layout.find('_')) + "_model";
            for (const Cell& d : cells) {
              if (d.save_ranks == c.save_ranks && d.layout == model && d.ratio > 0) {
                vs_model = std::to_string(c.ratio / d.ratio).substr(0, 5);
              }
            }
          }
          std::snprintf(line, sizeof line, "%5d %5d  %-18s %9.3f %9.3f %8.3f %8s %9llu %9llu %7llu  %s\n",
                        c.save_ranks, c.load_ranks, c.layout.c_str(), c.seconds, c.raw_seconds, c.ratio,
                        vs_model.c_str(), static_cast<unsigned long long>(c.pieces),
                        static_cast<unsigned long long>(c.messages), static_cast<unsigned long long>(c.rounds),
                        c.ok ? "verified" : "WRONG DATA");
          os << line;
        }
        os << "targets: x raw >= 0.7 in every cell; x model (transposed / model layout, same save ranks) >= 0.8\n";
      }
      std::fputs(os.str().c_str(), stdout);
    }
    return all_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dcpp bench --scale: %s\n", e.what());
    return 1;
  }
}

}  // namespace dcpp::bench
