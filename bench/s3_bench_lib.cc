// `dcpp bench --dir s3://...` (s3_bench.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/s3_file_system.h"
#include "s3_bench.h"

#ifndef DCPP_BENCH_DIR
#define DCPP_BENCH_DIR "bench"
#endif

namespace dcpp::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Times fn on every rank between two barriers (the slowest rank's time).
double timed_on_ranks(int ranks, const std::function<void(CommPtr)>& fn) {
  double result = 0;
  run_ranks(ranks, [&](CommPtr comm) {
    comm->barrier();
    const auto t0 = Clock::now();
    fn(comm);
    comm->barrier();
    if (comm->rank() == 0) result = seconds_since(t0);
  });
  return result;
}

struct Boto3Result {
  double upload = 0, download = 0;
  std::string error;
};

Boto3Result run_boto3(const std::string& python, const std::string& endpoint, const std::string& bucket,
                      const std::string& prefix, int objects, uint64_t bytes) {
  Boto3Result r;
  const std::string cmd = python + " " + DCPP_BENCH_DIR + "/s3_boto3_bench.py " + endpoint + " " + bucket + " " +
                          prefix + " " + std::to_string(objects) + " " + std::to_string(bytes) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    r.error = "cannot run " + cmd;
    return r;
  }
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0 || std::sscanf(out.c_str(), "upload_seconds %lf download_seconds %lf", &r.upload, &r.download) != 2) {
    r.error = "boto3 run failed: " + out.substr(0, 500);
  }
  return r;
}

}  // namespace

int run_s3_bench_command(const BenchOptions& o) {
  const S3Options s3 = s3_options_from_environment();
  std::string dir = o.dir;
  while (dir.size() > 5 && dir.back() == '/') dir.pop_back();
  const std::string bucket = dir.substr(5, dir.find('/', 5) == std::string::npos ? std::string::npos : dir.find('/', 5) - 5);
  const std::string prefix = dir.find('/', 5) == std::string::npos ? "dcpp-bench" : dir.substr(dir.find('/', 5) + 1);
  const int n = std::max(1, o.ranks);
  const int64_t rows = o.hidden, cols = 4 * o.hidden;
  const uint64_t layer_bytes = static_cast<uint64_t>(rows * cols) * 4;
  const uint64_t total = layer_bytes * static_cast<uint64_t>(o.layers);
  const uint64_t per_rank = total / static_cast<uint64_t>(n);
  const char* py_env = std::getenv("DCPP_S3_PYTHON");
  const std::string python =
      py_env ? py_env : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") + "/.cache/dcpp/s3-venv/bin/python";

  // The state: per layer one [hidden, 4·hidden] fp32 weight, Shard(0) over the ranks, random bytes.
  std::vector<Tensor> full;
  std::mt19937_64 rng(1234);
  for (int l = 0; l < o.layers; ++l) {
    Tensor t = Tensor::empty({rows, cols}, DType::kFloat32);
    auto* p = static_cast<uint32_t*>(t.data_ptr());
    for (int64_t i = 0; i < rows * cols; ++i) p[i] = static_cast<uint32_t>(rng() >> 40);
    full.push_back(t);
  }
  auto state_on = [&](const DeviceMesh& mesh, bool zeros) {
    StateDict sd;
    for (int l = 0; l < o.layers; ++l) {
      sd.set("layer" + std::to_string(l) + ".weight",
             distribute_tensor(zeros ? Tensor::zeros({rows, cols}, DType::kFloat32) : full[l], mesh, {Shard{0}}));
    }
    return sd;
  };
  std::vector<std::byte> raw(per_rank);
  std::memcpy(raw.data(), full[0].data_ptr(), std::min<uint64_t>(per_rank, layer_bytes));

  std::printf("dcpp bench (S3): %d thread ranks, %d layers of [%lld, %lld] fp32 = %.1f MiB, %d runs\n", n, o.layers,
              static_cast<long long>(rows), static_cast<long long>(cols), total / 1048576.0, o.runs);
  std::printf("endpoint %s, checkpoint under %s, part %llu MiB, %zu uploads in flight per file, Content-MD5 %s\n",
              s3.endpoint.c_str(), dir.c_str(), static_cast<unsigned long long>(s3.part_size >> 20),
              s3.upload_concurrency, s3.content_md5 ? "on" : "off");
  std::vector<double> save_s, load_s, raw_put_s, raw_get_s, boto_up_s, boto_down_s;
  std::string boto_error;
  bool wrong = false;
  auto fs = std::make_shared<S3FileSystem>(s3);
  for (int run = 0; run < std::max(1, o.runs); ++run) {
    const std::string ckpt = dir + "/ckpt-" + std::to_string(run);
    save_s.push_back(timed_on_ranks(n, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {n});
      save(state_on(mesh, false), ckpt, SaveOptions{.comm = comm});
    }));
    load_s.push_back(timed_on_ranks(n, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {n});
      StateDict sd = state_on(mesh, true);
      load(sd, ckpt, LoadOptions{.comm = comm});
      if (run == 0) {
        for (int l = 0; l < o.layers; ++l) {
          Tensor got = sd.at("layer" + std::to_string(l) + ".weight").as<DTensor>().full_tensor();
          if (comm->rank() == 0 && std::memcmp(got.data_ptr(), full[l].data_ptr(), layer_bytes) != 0) wrong = true;
        }
      }
    }));
    raw_put_s.push_back(timed_on_ranks(n, [&](CommPtr comm) {
      auto f = fs->open_write(dir + "/raw-" + std::to_string(comm->rank()) + ".bin");
      f->write_all(raw.data(), raw.size(), 0);
      f->close();
    }));
    raw_get_s.push_back(timed_on_ranks(n, [&](CommPtr comm) {
      auto f = fs->open_read(dir + "/raw-" + std::to_string(comm->rank()) + ".bin");
      std::vector<std::byte> back(per_rank);
      const uint64_t piece = 16 << 20;
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
          for (uint64_t at = static_cast<uint64_t>(t) * piece; at < per_rank; at += 4 * piece) {
            f->read_full(back.data() + at, static_cast<size_t>(std::min(piece, per_rank - at)), at);
          }
        });
      }
      for (auto& th : threads) th.join();
    }));
    Boto3Result b = run_boto3(python, s3.endpoint, bucket, prefix, n, per_rank);
    if (b.error.empty()) {
      boto_up_s.push_back(b.upload);
      boto_down_s.push_back(b.download);
    } else {
      boto_error = b.error;
    }
    fs->remove_all(ckpt);
  }
  for (int r = 0; r < n; ++r) fs->remove(dir + "/raw-" + std::to_string(r) + ".bin");

  auto rate = [&](double s) { return s > 0 ? total / s / 1048576.0 : 0.0; };
  auto ratios = [&](const std::vector<double>& mine, const std::vector<double>& theirs) {
    std::vector<double> v;
    for (size_t i = 0; i < std::min(mine.size(), theirs.size()); ++i) v.push_back(theirs[i] / mine[i]);
    return median(v);
  };
  std::printf("\n%-34s %10s %10s\n", "figure (median of runs)", "seconds", "MiB/s");
  std::printf("%-34s %10.3f %10.1f\n", "dcpp save", median(save_s), rate(median(save_s)));
  std::printf("%-34s %10.3f %10.1f\n", "dcpp load", median(load_s), rate(median(load_s)));
  std::printf("%-34s %10.3f %10.1f\n", "raw PUT (dcpp's client, 1 obj/rank)", median(raw_put_s), rate(median(raw_put_s)));
  std::printf("%-34s %10.3f %10.1f\n", "raw GET (16 MiB ranges, 4 threads)", median(raw_get_s), rate(median(raw_get_s)));
  if (!boto_up_s.empty()) {
    std::printf("%-34s %10.3f %10.1f\n", "boto3 upload_fileobj (default)", median(boto_up_s), rate(median(boto_up_s)));
    std::printf("%-34s %10.3f %10.1f\n", "boto3 download_fileobj (default)", median(boto_down_s), rate(median(boto_down_s)));
    std::printf("\ndcpp save / boto3 upload:   %.2fx (median of per-run ratios; target >= 1.0)\n", ratios(save_s, boto_up_s));
    std::printf("dcpp load / boto3 download: %.2fx\n", ratios(load_s, boto_down_s));
  } else {
    std::printf("\nboto3 not measured: %s\n", boto_error.c_str());
  }
  std::printf("dcpp save / raw PUT:        %.2fx\n", ratios(save_s, raw_put_s));
  std::printf("dcpp load / raw GET:        %.2fx\n", ratios(load_s, raw_get_s));
  if (wrong) std::printf("\nWRONG: a load returned bytes that differ from the saved ones\n");
  return wrong ? 1 : 0;
}

}  // namespace dcpp::bench
