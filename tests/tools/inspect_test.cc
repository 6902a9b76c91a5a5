// inspect_checkpoint() and verify_checkpoint() as a library (dcpp/inspect.h),
// on the 3-rank checkpoint of tools_support.h whose chunk table is computed
// there independently of dcpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "dcpp/error.h"
#include "dcpp/inspect.h"
#include "support/distributed.h"
#include "tools/tools_support.h"

namespace dcpp::testing {
namespace {

const KeySummary* find_key(const CheckpointSummary& s, const std::string& key) {
  for (const auto& k : s.keys) {
    if (k.key == key) return &k;
  }
  return nullptr;
}

TEST(tools_InspectApi, SummarisesKeysChunksAndBytes) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/ckpt";
  write_tp_checkpoint(dir);
  const CheckpointSummary s = inspect_checkpoint(dir);
  EXPECT_EQ(s.format, "dcpp");
  EXPECT_TRUE(s.complete);
  EXPECT_EQ(s.world_size, 3);
  struct Row {
    const char* key;
    Shape shape;
    uint64_t chunks, bytes;
  };
  for (const Row& row : {Row{"net1.weight", {16, 10}, 3, 640}, Row{"net1.bias", {16}, 3, 64},
                         Row{"net2.weight", {10, 16}, 3, 640}, Row{"net2.bias", {10}, 1, 40}}) {
    const KeySummary* k = find_key(s, row.key);
    ASSERT_NE(k, nullptr) << row.key;
    EXPECT_TRUE(k->is_tensor) << row.key;
    EXPECT_EQ(k->type, "float32") << row.key;
    EXPECT_EQ(k->shape, row.shape) << row.key;
    EXPECT_EQ(k->chunks, row.chunks) << row.key;
    EXPECT_EQ(k->bytes, row.bytes) << row.key;
  }
  const KeySummary* step = find_key(s, "step");
  ASSERT_NE(step, nullptr);
  EXPECT_FALSE(step->is_tensor);
  EXPECT_EQ(step->bytes, 8u);
}

TEST(tools_InspectApi, VerifyCollectsEveryProblemWithFileAndOffset) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/ckpt";
  write_tp_checkpoint(dir);
  const VerifyReport clean = verify_checkpoint(dir);
  EXPECT_TRUE(clean.ok());
  EXPECT_TRUE(clean.checksummed);
  EXPECT_EQ(clean.totals.tensors, 4u);
  EXPECT_EQ(clean.totals.values, 2u);
  EXPECT_EQ(clean.totals.chunks, 10u);

  // Rank 0 and rank 1 each write a chunk of net1.weight first, at offset 0 of their file.
  flip_byte(dir + "/data-00000.bin", 3);
  flip_byte(dir + "/data-00001.bin", 5);
  const VerifyReport bad = verify_checkpoint(dir);
  EXPECT_FALSE(bad.ok());
  ASSERT_EQ(bad.problems.size(), 2u);
  std::vector<std::string> files;
  for (const auto& p : bad.problems) {
    files.push_back(std::filesystem::path(p.file).filename().string());
    EXPECT_EQ(p.offset, 0) << p.message;
    EXPECT_NE(p.message.find("checksum"), std::string::npos) << p.message;
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"data-00000.bin", "data-00001.bin"}));
}

TEST(tools_InspectApi, MissingPathAndNonCheckpointAreErrors) {
  TempDir tmp;
  try {
    inspect_checkpoint(tmp.path() + "/none");
    FAIL() << "no error for a missing path";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("/none"), std::string::npos) << e.what();
  }
  std::filesystem::create_directories(tmp.path() + "/empty");
  try {
    verify_checkpoint(tmp.path() + "/empty");
    FAIL() << "no error for an empty directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("empty directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dcpp::testing
