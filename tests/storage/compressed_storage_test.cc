// Compressed native checkpoints (FileSystemWriterOptions::compress, format
// version 2): round trips with resharding on several world sizes, partial
// reads that fetch and decode only the blocks they need, damaged encoded
// blocks, and the layout the metadata describes. Expected values are the
// tensors the save came from.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "storage/test_planners.h"
#include "support/distributed.h"
#include "support/expect_error.h"

namespace dcpp {
namespace {

namespace stdfs = std::filesystem;
using testing::expect_error;
using testing::run_load;
using testing::run_save;
using testing::TempDir;
using testing::test_seed;
using testing::TestLoadPlanner;
using testing::TestSavePlanner;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Weight-like values: N(0, std) in float32, converted to `dtype`.
Tensor weights(const Shape& shape, DType dtype, uint64_t seed, float std = 0.02f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, std);
  Tensor f = Tensor::empty(shape, DType::kFloat32);
  float* p = f.data<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = dist(rng);
  return f.to(dtype);
}

size_t encoded_blocks(const Metadata& md) {
  size_t n = 0;
  for (const auto& [key, t] : md.tensors) {
    for (const auto& c : t.chunks) {
      for (const auto& b : c.location.stored_blocks) n += b.encoding == 1;
    }
  }
  return n;
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : stdfs::directory_iterator(dir)) {
    if (e.path().filename() != "dcpp.metadata") n += e.file_size();
  }
  return n;
}

TEST(storage_Compressed, SingleRankRoundTripIsVersion2AndSmaller) {
  const uint64_t seed = test_seed("Compressed.SingleRank");
  TempDir dir;
  Tensor bf = weights({256, 1000}, DType::kBFloat16, seed);
  Tensor f32 = weights({100, 300}, DType::kFloat32, seed + 1);
  Tensor f16 = weights({77, 33}, DType::kFloat16, seed + 2);
  // Random bits (as int32): nothing to gain.
  Tensor noise = Tensor::empty({64, 64}, DType::kInt32);
  std::mt19937 bits(static_cast<uint32_t>(seed + 3));
  for (int64_t i = 0; i < noise.numel(); ++i) noise.data<int32_t>()[i] = static_cast<int32_t>(bits());
  auto save_with = [&](const std::string& path, bool compress, size_t threads) {
    std::vector<TestSavePlanner> ranks(1);
    ranks[0].add_chunk("bf", bf, {0, 0}, bf.sizes());
    ranks[0].add_chunk("f32", f32.transpose(0, 1), {0, 0}, {300, 100});  // strided: gathered through staging
    ranks[0].add_chunk("f16", f16, {0, 0}, f16.sizes());
    ranks[0].add_chunk("noise", noise, {0, 0}, noise.sizes());
    ranks[0].add_value("note", ValueKind::kString, Bytes(5000, std::byte{'x'}));
    run_save(path, ranks,
             {.block_size = 8192, .io_threads = threads, .write_unit_bytes = 16384, .compress = compress});
  };
  save_with(dir.path() + "/raw", false, 2);
  for (size_t threads : {1, 2, 4}) {
    const std::string path = dir.path() + "/z" + std::to_string(threads);
    save_with(path, true, threads);
    TestLoadPlanner planner;
    Tensor b = Tensor::full(bf.sizes(), -7, DType::kBFloat16);
    Tensor f = Tensor::full({300, 100}, -7, DType::kFloat32);
    Tensor h = Tensor::full(f16.sizes(), -7, DType::kFloat16);
    Tensor n = Tensor::full(noise.sizes(), -7, DType::kInt32);
    planner.want("bf", b, {0, 0});
    planner.want("f32", f, {0, 0});
    planner.want("f16", h, {0, 0});
    planner.want("noise", n, {0, 0});
    planner.want_value("note");
    Metadata md = run_load(path, planner);
    EXPECT_TRUE(equal(b, bf)) << "threads " << threads << " seed " << seed;
    EXPECT_TRUE(equal(f, f32.transpose(0, 1).contiguous())) << "threads " << threads;
    EXPECT_TRUE(equal(h, f16));
    EXPECT_TRUE(equal(n, noise));
    EXPECT_EQ(planner.values.at("note"), Bytes(5000, std::byte{'x'}));
    EXPECT_EQ(md.format_version, 2u);
    EXPECT_GT(encoded_blocks(md), 0u);
    // Random bits do not pay: stored raw, no table.
    EXPECT_TRUE(md.tensors.at("noise").chunks[0].location.stored_blocks.empty());
    EXPECT_LT(dir_bytes(path), dir_bytes(dir.path() + "/raw") * 85 / 100) << "threads " << threads;
  }
  // Without compression the checkpoint stays version 1.
  EXPECT_EQ(FileSystemReader(dir.path() + "/raw").read_metadata().format_version, 1u);
}

TEST(storage_Compressed, CompressNeedsPageMultipleBlocks) {
  expect_error([] { FileSystemWriter("/tmp/x", {.block_size = 1000, .compress = true}); },
               ErrorCode::kInvalidArgument);
}

// One bf16 tensor [64, 4096] (8 KiB rows, block 4096: two blocks a row), compressed.
class storage_CompressedPartial : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/ckpt";
    global_ = weights({64, 4096}, DType::kBFloat16, test_seed("Compressed.Partial"));
    std::vector<TestSavePlanner> ranks(1);
    ranks[0].add_chunk("w", global_, {0, 0}, global_.sizes());
    run_save(path_, ranks, {.block_size = 4096, .compress = true});
    fs_ = std::make_shared<FaultInjectingFileSystem>();
    reader_ = std::make_unique<FileSystemReader>(path_, FileSystemReaderOptions{fs_, 1});
    reader_->set_up(0, 1, true);
    md_ = reader_->read_metadata();
  }
  void load_box(int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
    fs_->reset_counters();
    TestLoadPlanner planner;
    Tensor dest = Tensor::full({nr, nc}, -7, DType::kBFloat16);
    planner.want("w", dest, {r0, c0});
    planner.set_metadata(md_);
    reader_->read_data(planner.create_local_plan(), planner);
    EXPECT_TRUE(equal(dest, global_.narrow(0, r0, nr).narrow(1, c0, nc).contiguous()));
  }
  const StorageLocation& loc() const { return md_.tensors.at("w").chunks[0].location; }

  TempDir dir_;
  std::string path_;
  Tensor global_;
  std::shared_ptr<FaultInjectingFileSystem> fs_;
  std::unique_ptr<FileSystemReader> reader_;
  Metadata md_;
};

TEST_F(storage_CompressedPartial, ReadsOnlyTheStoredBlocksItNeeds) {
  ASSERT_EQ(loc().stored_blocks.size(), 128u);
  load_box(5, 1, 2048, 16);  // block 11 only
  const StoredBlock& b11 = loc().stored_blocks[11];
  ASSERT_EQ(b11.encoding, 1);
  // One read: the pages around the block's stored bytes (direct I/O reads whole pages).
  ASSERT_EQ(fs_->reads().size(), 1u);
  const uint64_t b = loc().byte_offset + b11.offset, e = b + b11.length;
  EXPECT_EQ(fs_->reads()[0].offset, b / 4096 * 4096);
  EXPECT_EQ(fs_->reads()[0].offset + fs_->reads()[0].length, (e + 4095) / 4096 * 4096);
  load_box(0, 64, 0, 4096);  // everything: the stored bytes, not the raw size
  EXPECT_GE(fs_->bytes_read(), loc().stored_length());
  EXPECT_LE(fs_->bytes_read(), (loc().stored_length() + 4095) / 4096 * 4096);
  EXPECT_LT(loc().stored_length(), loc().byte_length * 8 / 10);
  load_box(10, 20, 1000, 3000);
}

TEST_F(storage_CompressedPartial, DamagedEncodedBlockIsCorruptNamingFileOffsetAndKey) {
  const StoredBlock& b = loc().stored_blocks[7];
  const uint64_t at = loc().byte_offset + b.offset + b.length / 2;
  {
    std::fstream f(path_ + "/data-00000.bin", std::ios::in | std::ios::out | std::ios::binary);
    char c;
    f.seekg(static_cast<std::streamoff>(at));
    f.read(&c, 1);
    c ^= 0x5a;
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&c, 1);
  }
  Tensor dest = Tensor::full({1, 100}, -7, DType::kBFloat16);
  TestLoadPlanner planner;
  planner.want("w", dest, {3, 2100});  // row 3, second block = block 7
  planner.set_metadata(md_);
  Error e = expect_error([&] { reader_->read_data(planner.create_local_plan(), planner); }, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(e.message(), "data-00000.bin")) << e.message();
  EXPECT_TRUE(contains(e.message(), "key 'w'")) << e.message();
  EXPECT_TRUE(contains(e.message(), "byte offset " + std::to_string(loc().byte_offset + b.offset))) << e.message();
  EXPECT_TRUE(equal(dest, Tensor::full({1, 100}, -7, DType::kBFloat16)));
  load_box(0, 3, 0, 4096);  // other blocks still load
  load_box(3, 1, 0, 2048);
}

TEST_F(storage_CompressedPartial, TruncatedFileIsCorrupt) {
  const StoredBlock& b = loc().stored_blocks[100];
  stdfs::resize_file(path_ + "/data-00000.bin", loc().byte_offset + b.offset + 10);
  load_box(0, 10, 0, 4096);
  Tensor dest = Tensor::full({1, 4096}, -7, DType::kBFloat16);
  TestLoadPlanner planner;
  planner.want("w", dest, {50, 0});
  planner.set_metadata(md_);
  Error e = expect_error([&] { reader_->read_data(planner.create_local_plan(), planner); }, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(e.message(), "data-00000.bin")) << e.message();
}

// Save on `save_world` ranks, load resharded on `load_world` (read-once
// delivery on), compare with the globals.
struct Global {
  std::string key;
  Tensor value;
  Placement saved, loaded;
};

void save_and_load(const std::string& path, int save_world, int load_world, const std::vector<Global>& globals) {
  run_ranks(save_world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {save_world});
    StateDict sd;
    for (const auto& g : globals) sd.set(g.key, distribute_tensor(g.value, mesh, {g.saved}));
    sd.set("step", int64_t{42});
    FileSystemWriter writer(path, {.block_size = 4096, .write_unit_bytes = 8192, .compress = true});
    save(sd, writer, SaveOptions{.comm = comm});
  });
  run_ranks(load_world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {load_world});
    StateDict sd;
    for (const auto& g : globals) {
      sd.set(g.key, distribute_tensor(Tensor::full(g.value.sizes(), -777, g.value.dtype()), mesh, {g.loaded}));
    }
    sd.set("step", int64_t{0});
    FileSystemReader reader(path, {.share_piece_bytes = 8192});
    load(sd, reader, LoadOptions{.comm = comm});
    for (const auto& g : globals) {
      EXPECT_TRUE(equal(sd.at(g.key).as<DTensor>().full_tensor(), g.value))
          << g.key << " saved on " << save_world << " loaded on " << load_world;
    }
    EXPECT_EQ(sd.at("step").as<int64_t>(), 42);
  });
}

TEST(storage_Compressed, ReshardedLoadsOnSeveralWorldSizes) {
  const uint64_t seed = test_seed("Compressed.Resharded");
  std::vector<Global> globals = {
      {"w_col", weights({48, 1000}, DType::kBFloat16, seed), Shard{1}, Shard{0}},
      {"w_row", weights({60, 333}, DType::kFloat32, seed + 1), Shard{0}, Shard{1}},
      {"w_h", weights({31, 257}, DType::kFloat16, seed + 2), Shard{0}, Replicate{}},
      {"rep", weights({100, 50}, DType::kBFloat16, seed + 3), Replicate{}, Shard{1}},
  };
  TempDir dir;
  const std::pair<int, int> cases[] = {{3, 5}, {5, 3}, {2, 4}, {4, 1}};
  for (const auto& [s, l] : cases) {
    save_and_load(dir.path() + "/c" + std::to_string(s) + std::to_string(l), s, l, globals);
  }
}

}  // namespace
}  // namespace dcpp
