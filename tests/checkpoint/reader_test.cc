// CheckpointReader: serving access without a mesh or communicator.
#include <gtest/gtest.h>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

// [256, 64] float32 (256 B a row) over 4 ranks: 64 rows = 16 KiB = four
// 4 KiB blocks per chunk.
Tensor table(uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform({256, 64}, -1, 1, gen);
}

TEST(checkpoint_reader, ListsKeysAndReadsTensorsBoxesAndValues) {
  const uint64_t seed = test_seed("checkpoint_reader.ListsKeysAndReadsTensorsBoxesAndValues");
  TempDir tmp;
  run_ranks(4, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {4});
    StateDict sd{{"emb", distribute_tensor(table(seed), mesh, {Shard{0}})},
                 {"bias", distribute_tensor(Tensor::arange(6, DType::kInt64), mesh, {Replicate{}})},
                 {"meta", StateDict{{"vocab", int64_t{256}}, {"name", "toy"}}}};
    FileSystemWriterOptions options;
    options.block_size = 4096;
    FileSystemWriter writer(tmp.path(), options);
    save(sd, writer);
  });

  auto counting = std::make_shared<FaultInjectingFileSystem>();
  FileSystemReaderOptions read_options;
  read_options.filesystem = counting;
  CheckpointReader reader(std::make_unique<FileSystemReader>(tmp.path(), read_options));
  EXPECT_EQ(reader.keys(), (std::vector<std::string>{"bias", "emb", "meta.name", "meta.vocab"}));
  EXPECT_EQ(reader.tensor_keys(), (std::vector<std::string>{"bias", "emb"}));
  auto info = reader.tensor_info("emb");
  EXPECT_EQ(info.dtype, DType::kFloat32);
  EXPECT_EQ(info.shape, (Shape{256, 64}));
  EXPECT_EQ(reader.value("meta.vocab").as<int64_t>(), 256);
  EXPECT_EQ(reader.value("meta.name").as<std::string>(), "toy");

  Tensor full = table(seed);
  EXPECT_TRUE(equal(reader.read("emb"), full));
  EXPECT_TRUE(equal(reader.read("bias"), Tensor::arange(6, DType::kInt64)));

  // A box inside one chunk reads only the block that holds it: rows 100-109
  // are bytes 9216..11776 of chunk 1 (rows 64-127), all in its block 2.
  counting->reset_counters();
  Tensor box = reader.read("emb", {100, 5}, {10, 20});
  EXPECT_TRUE(equal(box, full.narrow(0, 100, 10).narrow(1, 5, 20).contiguous()));
  EXPECT_EQ(counting->bytes_read(), 4096u);

  // A box across two chunks, into a caller buffer, converted to bfloat16.
  std::vector<uint16_t> buffer(8 * 64);
  Tensor out = Tensor::from_blob(buffer.data(), {8, 64}, DType::kBFloat16);
  reader.read_into("emb", {60, 0}, out);
  EXPECT_TRUE(equal(out, full.narrow(0, 60, 8).to(DType::kBFloat16)));

  // Errors name the key.
  try {
    reader.read("nope");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(e.message().find("'nope'"), std::string::npos);
  }
  try {
    reader.read("emb", {250, 0}, {10, 64});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("'emb'"), std::string::npos);
  }
  try {
    reader.value("emb");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(checkpoint_reader, OpensAPathAndReportsAMissingCheckpoint) {
  TempDir tmp;
  try {
    CheckpointReader reader = open_checkpoint(tmp.path() + "/none");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(e.message().find("none"), std::string::npos);
  }
  save(StateDict{{"x", Tensor::arange(3)}}, tmp.path() + "/one");
  CheckpointReader reader = open_checkpoint(tmp.path() + "/one");
  EXPECT_TRUE(equal(reader.read("x"), Tensor::arange(3)));
  EXPECT_EQ(reader.metadata().world_size, 1);
}

}  // namespace
}  // namespace dcpp::testing
