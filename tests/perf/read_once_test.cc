// Read once, deliver everywhere: resharded loads on 2–5 thread ranks (Shard(1)
// to Shard(1), Shard(0) to Shard(1), replicated tensors) with the load's
// communicator handed to the reader. Data is checked against the globals
// the save came from; disk traffic is counted through one
// FaultInjectingFileSystem shared by all ranks: every byte is read once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using testing::TempDir;
using testing::test_seed;

struct Global {
  std::string key;
  Tensor value;
  Placement saved;
  Placement loaded;
};

std::vector<Global> make_globals(uint64_t seed) {
  Generator gen(seed);
  return {
      {"w_col", Tensor::uniform({48, 1000}, -1, 1, gen), Shard{1}, Shard{1}},
      {"w_row", Tensor::uniform({60, 333}, -1, 1, gen, DType::kBFloat16), Shard{0}, Shard{1}},
      {"rep", Tensor::uniform({100, 50}, -1, 1, gen), Replicate{}, Replicate{}},
      {"tail", Tensor::uniform({7, 13}, -1, 1, gen, DType::kFloat64), Shard{0}, Shard{0}},
  };
}

void save_globals(const std::string& path, int world, const std::vector<Global>& globals) {
  run_ranks(world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd;
    for (const auto& g : globals) sd.set(g.key, distribute_tensor(g.value, mesh, {g.saved}));
    sd.set("step", int64_t{42});
    FileSystemWriter writer(path, {.block_size = 4096});
    save(sd, writer, SaveOptions{.comm = comm});
  });
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct LoadOutcome {
  uint64_t disk_bytes = 0;      // every pread of every rank
  uint64_t distinct_bytes = 0;  // distinct file bytes those preads covered
  uint64_t sent = 0, received = 0;
};

LoadOutcome load_and_check(const std::string& path, int world, const std::vector<Global>& globals, bool read_once) {
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  std::atomic<uint64_t> sent{0}, received{0};
  run_ranks(world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd;
    for (const auto& g : globals) {
      Tensor sentinel = Tensor::full(g.value.sizes(), -777, g.value.dtype());
      sd.set(g.key, distribute_tensor(sentinel, mesh, {g.loaded}));
    }
    sd.set("step", int64_t{0});
    FileSystemReaderOptions options;
    options.filesystem = fs;
    options.io_threads = 2;
    options.read_once = read_once;  // load() hands the reader its communicator
    options.round_bytes = 32 << 10;       // several rounds
    options.share_piece_bytes = 8 << 10;  // shared blocks dealt out in 2-block pieces
    FileSystemReader reader(path, options);
    load(sd, reader, LoadOptions{.comm = comm});
    for (const auto& g : globals) {
      const DTensor& dt = sd.at(g.key).as<DTensor>();
      LocalChunk chunk = compute_local_shape_and_global_offset(g.value.sizes(), {world}, {comm->rank()}, {g.loaded});
      Tensor expected = g.value;
      for (size_t d = 0; d < chunk.local_shape.size(); ++d) {
        expected = expected.narrow(static_cast<int64_t>(d), std::min(chunk.global_offset[d], g.value.size(d)),
                                   chunk.local_shape[d]);
      }
      EXPECT_TRUE(equal(dt.to_local(), expected.contiguous())) << g.key << " on rank " << comm->rank();
    }
    EXPECT_EQ(sd.at("step").as<int64_t>(), 42);
    sent += reader.stats().bytes_sent;
    received += reader.stats().bytes_received;
    // All of a round's pieces for one rank travel as one message.
    const StorageIoStats st = reader.stats();
    EXPECT_LE(st.messages_sent, st.exchange_rounds * static_cast<uint64_t>(world - 1)) << "rank " << comm->rank();
    EXPECT_GE(st.pieces_sent, st.messages_sent) << "rank " << comm->rank();
    EXPECT_EQ(st.pieces_sent > 0, st.bytes_sent > 0) << "rank " << comm->rank();
  });
  LoadOutcome out;
  out.sent = sent;
  out.received = received;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> ranges;
  for (const auto& r : fs->reads()) {
    if (r.path.find("/data-") == std::string::npos) continue;  // every rank reads the metadata file
    out.disk_bytes += r.length;
    ranges[r.path].push_back({r.offset, r.offset + r.length});
  }
  for (auto& [file, list] : ranges) {
    std::sort(list.begin(), list.end());
    uint64_t end = 0;
    for (auto [b, e] : list) {
      b = std::max(b, end);
      if (e > b) out.distinct_bytes += e - b;
      end = std::max(end, e);
    }
  }
  return out;
}

TEST(perf_ReadOnce, ReshardedLoadsReadEachBlockOnce) {
  const uint64_t seed = test_seed("perf_ReadOnce.ReshardedLoadsReadEachBlockOnce");
  const auto globals = make_globals(seed);
  for (auto [saved, loaded] : std::vector<std::pair<int, int>>{{2, 4}, {4, 2}, {3, 5}, {5, 3}, {2, 3}}) {
    SCOPED_TRACE("saved on " + std::to_string(saved) + " ranks, loaded on " + std::to_string(loaded));
    TempDir dir;
    const std::string path = dir.path() + "/ckpt";
    save_globals(path, saved, globals);
    uint64_t data_bytes = 0;
    for (int r = 0; r < saved; ++r) data_bytes += (slurp(path + "/" + data_file_name(r)).size() + 4095) / 4096 * 4096;

    LoadOutcome once = load_and_check(path, loaded, globals, true);
    // Each rank reads the 8-byte "step" value itself; every tensor block once.
    EXPECT_EQ(once.disk_bytes - once.distinct_bytes, 8u * (loaded - 1)) << "some block was read by two ranks";
    EXPECT_LE(once.disk_bytes, data_bytes);
    EXPECT_GT(once.sent, 0u);
    EXPECT_EQ(once.sent, once.received);

    LoadOutcome each = load_and_check(path, loaded, globals, false);
    EXPECT_GT(each.disk_bytes, once.disk_bytes) << "without delivery, shared blocks are read by every rank that needs them";
    EXPECT_EQ(each.sent, 0u);
  }
}

TEST(perf_ReadOnce, SameShardingNeedsNoDelivery) {
  const auto globals = make_globals(test_seed("perf_ReadOnce.SameShardingNeedsNoDelivery"));
  std::vector<Global> same;
  for (const auto& g : globals) {
    if (!std::holds_alternative<Replicate>(g.saved)) same.push_back({g.key, g.value, g.saved, g.saved});
  }
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  save_globals(path, 3, same);
  LoadOutcome out = load_and_check(path, 3, same, true);
  EXPECT_EQ(out.sent, 0u);
  EXPECT_EQ(out.disk_bytes - out.distinct_bytes, 8u * 2);  // only the "step" value, read by each rank
}

TEST(perf_ReadOnce, CorruptBlockFailsEveryRankWithoutHanging) {
  const auto globals = make_globals(test_seed("perf_ReadOnce.CorruptBlockFailsEveryRankWithoutHanging"));
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  save_globals(path, 2, globals);
  Metadata md = read_fs_metadata(*default_file_system(), path);
  const StorageLocation& loc = md.tensors.at("w_col").chunks.at(0).location;
  const std::string file = path + "/" + loc.file;
  std::string bytes = slurp(file);
  bytes[loc.byte_offset + 3 * 4096 + 17] ^= 0x01;
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  std::mutex mutex;
  std::vector<std::string> errors;
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    StateDict sd;
    for (const auto& g : globals) {
      sd.set(g.key, distribute_tensor(Tensor::zeros(g.value.sizes(), g.value.dtype()), mesh, {g.loaded}));
    }
    FileSystemReader reader(path, {.comm = comm});
    try {
      load(sd, reader, LoadOptions{.comm = comm});
    } catch (const Error& e) {
      std::lock_guard lock(mutex);
      errors.push_back(e.what());
    }
  });
  ASSERT_EQ(errors.size(), 3u) << "every rank must fail";
  for (const auto& e : errors) EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
}

}  // namespace
}  // namespace dcpp
