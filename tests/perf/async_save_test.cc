// async_save: the background writer is held back at the file-system seam
// until the caller has changed every parameter; the checkpoint still holds
// the values of the call. A second save waits for the first; errors reach
// the future on every rank.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dcpp/async_save.h"
#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using testing::for_each_world_size;
using testing::TempDir;
using testing::test_seed;

// Forwards to POSIX, but an open of a data file ("data-") waits while the
// gate is closed; tests can wait until a given file's open is waiting.
class GatedFileSystem final : public ForwardingFileSystem {
 public:
  void open_gate() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until an open of a path containing `part` is held at the gate.
  bool wait_until_held(const std::string& part, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& p : held_) {
        if (p.find(part) != std::string::npos) return true;
      }
      return false;
    });
  }
  size_t held_count() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) override {
    gate(path);
    return ForwardingFileSystem::open_read(path, options);
  }
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) override {
    gate(path);
    return ForwardingFileSystem::open_write(path, options);
  }

 private:
  void gate(const std::string& path) {
    if (path.find("data-") == std::string::npos) return;
    std::unique_lock lock(mutex_);
    held_.insert(path);
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
  std::set<std::string> held_;
};

struct Model {
  Tensor w_col, w_row, bias, plain;
};

Model make_model(uint64_t seed) {
  Generator gen(seed);
  return {Tensor::uniform({40, 24}, -1, 1, gen), Tensor::uniform({24, 40}, -1, 1, gen, DType::kBFloat16),
          Tensor::uniform({24}, -1, 1, gen), Tensor::uniform({5, 6}, -1, 1, gen, DType::kFloat64)};
}

StateDict model_state(const Model& m, const DeviceMesh& mesh) {
  StateDict optim;
  optim.set("step", int64_t{11});
  optim.set("lr", 0.25);
  return StateDict{{"net1.weight", distribute_tensor(m.w_col, mesh, {Shard{0}})},
                   {"net2.weight", distribute_tensor(m.w_row, mesh, {Shard{1}})},
                   {"net2.bias", distribute_tensor(m.bias, mesh, {Replicate{}})},
                   {"buffer", m.plain.clone()},
                   {"optim", optim}};
}

// Loads `path` into sentinel targets and compares with `m`.
void expect_checkpoint_holds(const std::string& path, const Model& m, const CommPtr& comm, const DeviceMesh& mesh) {
  Model sentinel{Tensor::full(m.w_col.sizes(), -9), Tensor::full(m.w_row.sizes(), -9, DType::kBFloat16),
                 Tensor::full(m.bias.sizes(), -9), Tensor::full(m.plain.sizes(), -9, DType::kFloat64)};
  StateDict sd = model_state(sentinel, mesh);
  sd.at("optim").as<StateDict>().set("step", int64_t{0});
  load(sd, path, LoadOptions{.comm = comm});
  EXPECT_TRUE(equal(sd.at("net1.weight").as<DTensor>().full_tensor(), m.w_col));
  EXPECT_TRUE(equal(sd.at("net2.weight").as<DTensor>().full_tensor(), m.w_row));
  EXPECT_TRUE(equal(sd.at("net2.bias").as<DTensor>().full_tensor(), m.bias));
  EXPECT_TRUE(equal(sd.at("buffer").as<Tensor>(), m.plain));
  EXPECT_EQ(sd.at("optim").as<StateDict>().at("step").as<int64_t>(), 11);
}

TEST(perf_AsyncSave, HeldBackWriterStillSavesTheValuesOfTheCall) {
  const Model m = make_model(test_seed("perf_AsyncSave.HeldBackWriterStillSavesTheValuesOfTheCall"));
  for (int world : {2, 3}) {
    TempDir dir;
    const std::string path = dir.path() + "/ckpt";
    auto gated = std::make_shared<GatedFileSystem>();
    run_ranks(world, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
      StateDict sd = model_state(m, mesh);
      AsyncSaver saver;
      std::future<void> done =
          saver.save(sd, path, SaveOptions{.comm = comm}, FileSystemWriterOptions{.filesystem = gated});
      EXPECT_GT(saver.staging_bytes(), 0u);
      // The background writer of this rank is now stuck before its first byte.
      ASSERT_TRUE(gated->wait_until_held(data_file_name(comm->rank())));
      EXPECT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
      // Change every parameter (and a value) in place, and use the caller's
      // communicator while the save is in flight.
      for (const char* key : {"net1.weight", "net2.weight", "net2.bias"}) {
        sd.at(key).as<DTensor>().local().fill_(1234.5);
      }
      sd.at("buffer").as<Tensor>().fill_(-3);
      sd.at("optim").as<StateDict>().set("step", int64_t{99});
      comm->barrier();
      if (comm->rank() == 0) gated->open_gate();
      done.get();
      expect_checkpoint_holds(path, m, comm, mesh);
    });
  }
}

TEST(perf_AsyncSave, SecondSaveWaitsForTheFirst) {
  const Model m = make_model(test_seed("perf_AsyncSave.SecondSaveWaitsForTheFirst"));
  TempDir dir;
  auto gated = std::make_shared<GatedFileSystem>();
  run_ranks(2, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {2});
    StateDict sd = model_state(m, mesh);
    AsyncSaver saver;
    std::future<void> first = saver.save(sd, dir.path() + "/a", SaveOptions{.comm = comm},
                                         FileSystemWriterOptions{.filesystem = gated});
    std::thread opener;
    if (comm->rank() == 0) {
      opener = std::thread([&] {
        gated->wait_until_held("data-00000");
        gated->wait_until_held("data-00001");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        gated->open_gate();
      });
    }
    std::future<void> second = saver.save(sd, dir.path() + "/b", SaveOptions{.comm = comm});
    // save() returned: the first save had finished before staging began.
    EXPECT_EQ(first.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    if (opener.joinable()) opener.join();
    first.get();
    second.get();
    expect_checkpoint_holds(dir.path() + "/a", m, comm, mesh);
    expect_checkpoint_holds(dir.path() + "/b", m, comm, mesh);
  });
}

TEST(perf_AsyncSave, WriteErrorSurfacesOnEveryRanksFuture) {
  const Model m = make_model(test_seed("perf_AsyncSave.WriteErrorSurfacesOnEveryRanksFuture"));
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  auto faulty = std::make_shared<FaultInjectingFileSystem>();
  faulty->add_fault({.op = FsOp::kPwrite, .nth = 1, .error = 28 /* ENOSPC */, .path_contains = "data-00001"});
  std::atomic<int> failed{0};
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    StateDict sd = model_state(m, mesh);
    AsyncSaver saver;
    std::future<void> done =
        saver.save(sd, path, SaveOptions{.comm = comm}, FileSystemWriterOptions{.filesystem = faulty});
    try {
      done.get();
    } catch (const Error& e) {
      ++failed;
      EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
    }
    // The caller's communicator still works after the background failure.
    comm->barrier();
  });
  EXPECT_EQ(failed.load(), 3);
  EXPECT_EQ(checkpoint_state(*default_file_system(), path), CheckpointState::kMissing);
}

TEST(perf_AsyncSave, StagingBuffersAreReused) {
  const Model m = make_model(test_seed("perf_AsyncSave.StagingBuffersAreReused"));
  TempDir dir;
  run_ranks(2, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {2});
    StateDict sd = model_state(m, mesh);
    AsyncSaver saver;
    saver.save(sd, dir.path() + "/a", SaveOptions{.comm = comm}).get();
    const size_t bytes = saver.staging_bytes();
    // Every tensor is staged at a page boundary: 4 tensors here → 4 pages at least.
    EXPECT_GE(bytes, 4u * 4096);
    sd.at("buffer").as<Tensor>().fill_(0.5);
    saver.save(sd, dir.path() + "/b", SaveOptions{.comm = comm}).get();
    EXPECT_EQ(saver.staging_bytes(), bytes);
    Model changed = m;
    changed.plain = Tensor::full(m.plain.sizes(), 0.5, DType::kFloat64);
    expect_checkpoint_holds(dir.path() + "/b", changed, comm, mesh);
  });
}

TEST(perf_AsyncSave, ReserveSizesTheStagingBeforeTheFirstSave) {
  const Model m = make_model(test_seed("perf_AsyncSave.ReserveSizesTheStagingBeforeTheFirstSave"));
  for (int world : {2, 3}) {
    TempDir dir;
    run_ranks(world, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
      StateDict sd = model_state(m, mesh);
      // What staging needs, from the rank's own tensors: each at a page boundary.
      size_t expected = 0;
      for (const char* key : {"net1.weight", "net2.weight", "net2.bias"}) {
        expected += (std::max<size_t>(sd.at(key).as<DTensor>().local().nbytes(), 1) + 4095) / 4096 * 4096;
      }
      expected += (sd.at("buffer").as<Tensor>().nbytes() + 4095) / 4096 * 4096;
      AsyncSaver saver;
      EXPECT_EQ(saver.staging_capacity(), 0u);
      saver.reserve(sd, SaveOptions{.comm = comm});
      EXPECT_EQ(saver.staging_capacity(), expected) << "world " << world << " rank " << comm->rank();
      saver.save(sd, dir.path() + "/ckpt", SaveOptions{.comm = comm}).get();
      // The first save used the reserved buffers: nothing was reallocated.
      EXPECT_EQ(saver.staging_capacity(), expected);
      EXPECT_EQ(saver.staging_bytes(), expected);
      expect_checkpoint_holds(dir.path() + "/ckpt", m, comm, mesh);
    });
  }
}

}  // namespace
}  // namespace dcpp
