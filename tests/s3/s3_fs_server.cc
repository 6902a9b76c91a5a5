// S3FileSystem against a real S3-compatible server (moto on the loopback):
// multipart uploads fed by concurrent positional writes, ranged reads,
// names, exclusive creation, errors naming the object and the HTTP status.
// Expected bytes are the random buffers written, compared byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "dcpp/error.h"
#include "s3/s3_env.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

std::string unique_prefix(const std::string& name) {
  static std::random_device rd;
  return std::string("s3://") + kS3TestBucket + "/fs-" + name + "-" + std::to_string(rd());
}

std::vector<unsigned char> random_bytes(size_t n, uint64_t seed) {
  std::vector<unsigned char> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<unsigned char>(rng());
  return v;
}

std::vector<unsigned char> read_all(FileSystem& fs, const std::string& path) {
  auto f = fs.open_read(path);
  std::vector<unsigned char> v(f->size());
  EXPECT_EQ(f->read_full(v.data(), v.size(), 0), v.size());
  return v;
}

// 3 threads write 1 MiB pieces of a 17.5 MiB object in random order: four
// 5 MiB parts go up while the writes go on, the rest at close.
TEST(S3FileSystem, ConcurrentPositionalWritesMakeOneObject) {
  DCPP_REQUIRE_S3();
  const uint64_t seed = test_seed("S3FileSystem.ConcurrentPositionalWrites");
  S3FileSystem& fs = *s3_test_file_system();
  const std::string path = unique_prefix("multipart") + "/object.bin";
  const size_t size = (35u << 20) / 2;
  const auto bytes = random_bytes(size, seed);
  std::vector<size_t> pieces;
  for (size_t at = 0; at < size; at += 1 << 20) pieces.push_back(at);
  std::shuffle(pieces.begin(), pieces.end(), std::mt19937_64(seed));
  {
    auto out = fs.open_write(path);
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&] {
        for (size_t i; (i = next++) < pieces.size();) {
          const size_t n = std::min<size_t>(1 << 20, size - pieces[i]);
          out->write_all(bytes.data() + pieces[i], n, pieces[i]);
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(fs.file_type(path), FileType::kNone) << "an object appears only at close";
    out->close();
  }
  EXPECT_EQ(fs.file_size(path), size);
  EXPECT_EQ(read_all(fs, path), bytes);
  // A ranged read across a part boundary.
  auto in = fs.open_read(path);
  std::vector<unsigned char> mid(3 << 20);
  ASSERT_EQ(in->read_full(mid.data(), mid.size(), (4 << 20) + 17), mid.size());
  EXPECT_EQ(0, std::memcmp(mid.data(), bytes.data() + (4 << 20) + 17, mid.size()));
  EXPECT_EQ(in->read(mid.data(), 10, size), 0u) << "end of object";
}

TEST(S3FileSystem, SmallAndEmptyObjectsAndNames) {
  DCPP_REQUIRE_S3();
  S3FileSystem& fs = *s3_test_file_system();
  const std::string dir = unique_prefix("names");
  EXPECT_EQ(fs.file_type(dir), FileType::kNone);
  EXPECT_TRUE(fs.list_dir(dir).empty());
  const auto small = random_bytes(1000, 1);
  {
    auto out = fs.open_write(dir + "/a/x.bin");
    out->write_all(small.data(), small.size(), 0);
    out->close();
    auto empty = fs.open_write(dir + "/b.bin");
    empty->close();
  }
  EXPECT_EQ(read_all(fs, dir + "/a/x.bin"), small);
  EXPECT_EQ(fs.file_size(dir + "/b.bin"), 0u);
  EXPECT_EQ(fs.file_type(dir), FileType::kDirectory);
  EXPECT_EQ(fs.file_type(dir + "/a"), FileType::kDirectory);
  EXPECT_EQ(fs.file_type(dir + "/a/x.bin"), FileType::kRegular);
  EXPECT_EQ(fs.list_dir(dir), (std::vector<std::string>{"a", "b.bin"}));
  EXPECT_TRUE(fs.remove(dir + "/b.bin"));
  EXPECT_FALSE(fs.remove(dir + "/b.bin"));
  fs.remove_all(dir);
  EXPECT_EQ(fs.file_type(dir), FileType::kNone);
}

TEST(S3FileSystem, ErrorsNameTheObjectAndStatus) {
  DCPP_REQUIRE_S3();
  S3FileSystem& fs = *s3_test_file_system();
  const std::string path = unique_prefix("errors") + "/missing.bin";
  try {
    fs.open_read(path);
    ADD_FAILURE() << "opened a missing object";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
  }
  S3FileSystem other(s3_test_options());
  try {
    other.file_size(std::string("s3://no-such-bucket-dcpp/") + "k");
    ADD_FAILURE() << "sized an object of a missing bucket";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("s3://no-such-bucket-dcpp/k"), std::string::npos) << e.message();
  }
  // Exclusive creation refuses to replace an object (If-None-Match: *).
  const std::string once = unique_prefix("errors") + "/once.bin";
  for (int i = 0; i < 2; ++i) {
    auto out = fs.open_write(once, {.exclusive = true});
    out->write_all("abc", 3, 0);
    if (i == 0) {
      out->close();
      continue;
    }
    try {
      out->close();
      ADD_FAILURE() << "a second exclusive write of " << once << " succeeded";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(once), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("412"), std::string::npos) << e.message();
    }
  }
}

// A file destroyed before close() leaves no object and no upload behind.
TEST(S3FileSystem, UnclosedFileLeavesNothing) {
  DCPP_REQUIRE_S3();
  S3FileSystem& fs = *s3_test_file_system();
  const std::string path = unique_prefix("abort") + "/object.bin";
  const auto bytes = random_bytes(12 << 20, 2);
  {
    auto out = fs.open_write(path);
    out->write_all(bytes.data(), bytes.size(), 0);  // two parts upload now
  }
  EXPECT_EQ(fs.file_type(path), FileType::kNone);
}

}  // namespace
}  // namespace dcpp::testing
