// Bad input and failures: each case checks the error code and that the
// message names the key, file or rank involved; failures are collective.
// Missing keys, a truncated data file and a save failing over an existing
// checkpoint are checked for every storage format in tests/conformance.
#include <gtest/gtest.h>

#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "checkpoint/memory_storage.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

namespace fs = std::filesystem;

// Collects the error every rank threw (or a marker when it threw none).
class RankErrors {
 public:
  explicit RankErrors(int world) : errors_(world) {}
  template <typename F>
  void run(int rank, F&& body) {
    try {
      body();
      set(rank, std::nullopt);
    } catch (const Error& e) {
      set(rank, e);
    }
  }
  const std::optional<Error>& at(int rank) const { return errors_.at(rank); }
  int size() const { return static_cast<int>(errors_.size()); }

 private:
  void set(int rank, std::optional<Error> e) {
    std::lock_guard lock(mu_);
    errors_[rank] = std::move(e);
  }
  std::mutex mu_;
  std::vector<std::optional<Error>> errors_;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void flip_byte(const std::string& path, uint64_t offset) {
  Bytes b = read_file(path);
  ASSERT_LT(offset, b.size());
  b[offset] ^= std::byte{0x40};
  write_file(path, b);
}

// A [64, 64] float32 weight (256 B a row), Shard(0) over `world` ranks,
// saved with 4 KiB checksum blocks (16 rows a block).
Tensor weight_full() {
  Generator gen(31337);
  return Tensor::uniform({64, 64}, -1, 1, gen);
}

void save_weight(const std::string& dir, int world) {
  run_ranks(world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd{{"w", distribute_tensor(weight_full(), mesh, {Shard{0}})}, {"step", int64_t{9}}};
    FileSystemWriterOptions options;
    options.block_size = 4096;
    FileSystemWriter writer(dir, options);
    save(sd, writer);
  });
}

// Loads "w" on `world` ranks as Shard(0) into sentinels; returns every rank's error.
std::shared_ptr<RankErrors> load_weight(const std::string& dir, int world, bool check_values = true) {
  auto errors = std::make_shared<RankErrors>(world);
  run_ranks(world, [&](CommPtr comm) {
    errors->run(comm->rank(), [&] {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
      DTensor w = distribute_tensor(Tensor::full({64, 64}, -7.0), mesh, {Shard{0}});
      StateDict sd{{"w", w}};
      load(sd, dir);
      if (check_values) {
        EXPECT_TRUE(equal(w.full_tensor(), weight_full()));
      }
    });
  });
  return errors;
}

// ---------------- key validation ----------------

TEST(checkpoint_errors, ShapeMismatchNamesTheKey) {
  TempDir tmp;
  save(StateDict{{"w", Tensor::zeros({3, 4})}}, tmp.path());
  Tensor wrong = Tensor::full({4, 3}, -7.0);
  StateDict sd{{"w", wrong}};
  try {
    load(sd, tmp.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.message(), "'w' has global shape [3, 4] in the checkpoint but [4, 3]")) << e.message();
  }
  EXPECT_TRUE(equal(wrong, Tensor::full({4, 3}, -7.0)));
}

// ---------------- damaged checkpoints ----------------

TEST(checkpoint_errors, FlippedByteInABlockReadByAReshardedLoad) {
  TempDir tmp;
  save_weight(tmp.path(), 2);
  // Rank 1 saved rows [32, 64): 8 KiB, blocks 0 (rows 32-47) and 1 (rows
  // 48-63). Flip a byte in block 1.
  const Metadata md = read_fs_metadata(*default_file_system(), tmp.path());
  const TensorMeta& tm = md.tensors.at("w");
  const ChunkMeta* second = nullptr;
  for (const auto& c : tm.chunks) {
    if (c.offsets == Shape{32, 0}) second = &c;
  }
  ASSERT_NE(second, nullptr);
  ASSERT_EQ(second->location.block_checksums.size(), 2u);
  flip_byte(tmp.path() + "/" + second->location.file, second->location.byte_offset + 4096 + 100);

  // On 3 ranks (rows 0-21, 22-43, 44-63) rank 1 reads block 0 of that chunk,
  // and only rank 2 reads block 1.
  auto errors = load_weight(tmp.path(), 3, false);
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(errors->at(r)) << "rank " << r << " did not fail";
    const std::string& m = errors->at(r)->message();
    EXPECT_EQ(errors->at(r)->code(), ErrorCode::kCorrupt) << m;
    EXPECT_TRUE(contains(m, "failed on rank 2 (of 3)")) << m;
    EXPECT_TRUE(contains(m, "checksum mismatch")) << m;
    EXPECT_TRUE(contains(m, second->location.file)) << m;
    EXPECT_TRUE(contains(m, "w")) << m;
  }

  // A box that avoids the damaged block still reads (only its blocks are verified).
  CheckpointReader reader = open_checkpoint(tmp.path());
  Tensor rows = reader.read("w", {32, 0}, {4, 64});
  EXPECT_TRUE(equal(rows, weight_full().narrow(0, 32, 4).contiguous()));
  try {
    reader.read("w", {62, 0}, {1, 64});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  }
}

TEST(checkpoint_errors, FlippedByteInTheMetadata) {
  TempDir tmp;
  save_weight(tmp.path(), 2);
  const std::string meta = tmp.path() + "/" + std::string(kMetadataFileName);
  flip_byte(meta, fs::file_size(meta) / 2);
  auto errors = load_weight(tmp.path(), 2, false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(errors->at(r));
    EXPECT_EQ(errors->at(r)->code(), ErrorCode::kCorrupt);
    EXPECT_TRUE(contains(errors->at(r)->message(), std::string(kMetadataFileName))) << errors->at(r)->message();
    EXPECT_TRUE(contains(errors->at(r)->message(), "every rank")) << errors->at(r)->message();
  }
}

TEST(checkpoint_errors, MissingMetadata) {
  TempDir tmp;
  save_weight(tmp.path(), 2);
  fs::remove(tmp.path() + "/" + std::string(kMetadataFileName));
  auto errors = load_weight(tmp.path(), 2, false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(errors->at(r));
    EXPECT_EQ(errors->at(r)->code(), ErrorCode::kNotFound);
    EXPECT_TRUE(contains(errors->at(r)->message(), std::string(kMetadataFileName))) << errors->at(r)->message();
  }
}

// Rewrites the checkpoint's metadata with `edit` applied to its encoding.
template <typename Edit>
void rewrite_metadata(const std::string& dir, Edit edit) {
  Metadata md = read_fs_metadata(*default_file_system(), dir);
  std::vector<std::byte> bytes = edit(md);
  write_file(dir + "/" + std::string(kMetadataFileName), Bytes(bytes.begin(), bytes.end()));
}

TEST(checkpoint_errors, NewerFormatVersion) {
  TempDir tmp;
  save_weight(tmp.path(), 2);
  rewrite_metadata(tmp.path(), [](Metadata md) {
    md.format_version = kFsFormatVersion + 1;
    return encode_metadata(md);
  });
  auto errors = load_weight(tmp.path(), 2, false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(errors->at(r));
    EXPECT_EQ(errors->at(r)->code(), ErrorCode::kUnsupported);
    EXPECT_TRUE(contains(errors->at(r)->message(), "version " + std::to_string(kFsFormatVersion + 1)))
        << errors->at(r)->message();
  }
}

TEST(checkpoint_errors, DotDotInAFileName) {
  TempDir tmp;
  save_weight(tmp.path(), 2);
  // The encoder refuses such a name, so encode a same-length one and patch
  // it in, then fix the trailing XXH3-64 self-checksum (docs/format.md).
  const std::string good = data_file_name(1);  // "data-00001.bin"
  const std::string evil = "../x-00001.bin";
  ASSERT_EQ(good.size(), evil.size());
  rewrite_metadata(tmp.path(), [&](Metadata md) {
    std::vector<std::byte> b = encode_metadata(md);
    std::string s(reinterpret_cast<const char*>(b.data()), b.size());
    size_t at = s.find(good);
    EXPECT_NE(at, std::string::npos);
    std::memcpy(b.data() + at, evil.data(), evil.size());
    uint64_t sum = XXH3_64bits(b.data(), b.size() - 8);
    std::memcpy(b.data() + b.size() - 8, &sum, 8);
    return b;
  });
  auto errors = load_weight(tmp.path(), 2, false);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(errors->at(r));
    EXPECT_EQ(errors->at(r)->code(), ErrorCode::kCorrupt);
    EXPECT_TRUE(contains(errors->at(r)->message(), evil)) << errors->at(r)->message();
  }
}

// ---------------- failures during save and load ----------------

TEST(checkpoint_errors, ARankThrowingMidSaveFailsEveryRank) {
  for (FailMode mode : {FailMode::kDcppError, FailMode::kForeignException}) {
    auto store = std::make_shared<MemoryStore>();
    RankErrors errors(4);
    run_ranks(4, [&](CommPtr comm) {
      errors.run(comm->rank(), [&] {
        DeviceMesh mesh = init_device_mesh(comm, "cpu", {4});
        StateDict sd{{"a", distribute_tensor(Tensor::arange(16), mesh, {Shard{0}})},
                     {"b", distribute_tensor(Tensor::arange(8), mesh, {Shard{0}})}};
        MemoryWriter writer(store, comm->rank() == 2 ? mode : FailMode::kNone);
        save(sd, writer);
      });
    });
    for (int r = 0; r < 4; ++r) {
      ASSERT_TRUE(errors.at(r)) << "rank " << r << " did not fail";
      const std::string& m = errors.at(r)->message();
      EXPECT_EQ(errors.at(r)->code(), mode == FailMode::kDcppError ? ErrorCode::kIo : ErrorCode::kInternal) << m;
      EXPECT_TRUE(contains(m, "rank 2 (of 4)")) << m;
      EXPECT_TRUE(contains(m, "injected")) << m;
    }
    EXPECT_EQ(store->commits, 0);
    EXPECT_EQ(store->aborts, 4);
    EXPECT_FALSE(store->metadata);
  }
}

TEST(checkpoint_errors, ARankThrowingOutsideSaveFailsTheOthers) {
  // Rank 1 dies before it reaches save(): the others' collectives fail fast
  // (thread backend) and their save() reports rank 1.
  auto store = std::make_shared<MemoryStore>();
  RankErrors errors(3);
  EXPECT_THROW(run_ranks(3,
                         [&](CommPtr comm) {
                           if (comm->rank() == 1) throw std::runtime_error("rank 1 crashed before saving");
                           errors.run(comm->rank(), [&] {
                             MemoryWriter writer(store);
                             save(StateDict{{"x", Tensor::arange(4)}}, writer, SaveOptions{.comm = comm});
                           });
                         }),
               Error);
  for (int r : {0, 2}) {
    ASSERT_TRUE(errors.at(r)) << "rank " << r << " did not fail";
    EXPECT_TRUE(contains(errors.at(r)->message(), "rank 1")) << errors.at(r)->message();
  }
  EXPECT_EQ(store->commits, 0);
}

TEST(checkpoint_errors, ARankThrowingMidLoadFailsEveryRank) {
  auto store = std::make_shared<MemoryStore>();
  run_ranks(2, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {2});
    MemoryWriter writer(store);
    save(StateDict{{"a", distribute_tensor(Tensor::arange(10), mesh, {Shard{0}})}}, writer);
  });
  RankErrors errors(3);
  run_ranks(3, [&](CommPtr comm) {
    errors.run(comm->rank(), [&] {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
      StateDict sd{{"a", distribute_tensor(Tensor::zeros({10}), mesh, {Shard{0}})}};
      MemoryReader reader(store, comm->rank() == 1 ? FailMode::kDcppError : FailMode::kNone);
      load(sd, reader);
    });
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(errors.at(r)) << "rank " << r << " did not fail";
    const std::string& m = errors.at(r)->message();
    EXPECT_EQ(errors.at(r)->code(), ErrorCode::kCorrupt) << m;
    EXPECT_TRUE(contains(m, "load failed on rank 1 (of 3) while reading data")) << m;
  }
}

TEST(checkpoint_errors, MeshesOnDifferentCommunicatorsNeedAnExplicitComm) {
  run_ranks(2, [](CommPtr comm) {
    DeviceMesh a = init_device_mesh(comm, "cpu", {2});
    CommPtr other = comm->split(0, comm->rank());
    DeviceMesh b = init_device_mesh(other, "cpu", {2});
    StateDict sd{{"x", distribute_tensor(Tensor::arange(4), a, {Shard{0}})},
                 {"y", distribute_tensor(Tensor::arange(4), b, {Shard{0}})}};
    try {
      infer_communicator(sd);
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_TRUE(contains(e.message(), "'x' and 'y'")) << e.message();
    }
  });
}

}  // namespace
}  // namespace dcpp::testing
