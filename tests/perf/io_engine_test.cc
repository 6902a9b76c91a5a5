// The native format's I/O engine: every write mode (direct, buffered
// fallback, several writer threads, units cut inside items, strided tensors,
// straight-from-memory writes) produces the bytes docs/format.md prescribes,
// built here independently; reads coalesce, run in parallel, stay bounded
// and deliver exact data.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "storage/test_planners.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using testing::run_load;
using testing::run_save;
using testing::TempDir;
using testing::test_seed;
using testing::TestLoadPlanner;
using testing::TestSavePlanner;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

uint64_t align4k(uint64_t v) { return (v + 4095) / 4096 * 4096; }

// The raw bytes a chunk stores: row-major, little-endian (this machine's order).
std::string row_major_bytes(const Tensor& t) {
  Tensor c = t.clone();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// Forwards to POSIX; optionally refuses O_DIRECT (as tmpfs does) and records
// the memory each pwrite came from.
class RecordingFileSystem final : public ForwardingFileSystem {
 public:
  explicit RecordingFileSystem(bool refuse_direct) : refuse_direct_(refuse_direct) {}
  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) override {
    OpenReadOptions o = options;
    if (refuse_direct_) o.try_direct = false;
    return ForwardingFileSystem::open_read(path, o);
  }
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) override {
    OpenWriteOptions o = options;
    if (refuse_direct_) o.try_direct = false;
    return std::make_unique<RecordingFile>(*this, ForwardingFileSystem::open_write(path, o));
  }

  struct Write {
    const void* data;
    size_t length;
    uint64_t offset;
    bool direct;
  };
  std::vector<Write> writes;

 private:
  class RecordingFile final : public ForwardingWritableFile {
   public:
    RecordingFile(RecordingFileSystem& fs, std::unique_ptr<WritableFile> f)
        : ForwardingWritableFile(std::move(f)), fs_(fs) {}
    size_t write(const void* data, size_t length, uint64_t offset) override {
      {
        std::lock_guard lock(fs_.mutex_);
        fs_.writes.push_back({data, length, offset, direct()});
      }
      return ForwardingWritableFile::write(data, length, offset);
    }

   private:
    RecordingFileSystem& fs_;
  };

  bool refuse_direct_;
  std::mutex mutex_;
};

// One rank's state: a mix of shapes, dtypes and layouts.
struct Items {
  Tensor big;         // float32 [96, 700]: 262 KiB, many blocks and units
  Tensor strided;     // bfloat16 [130, 45] transposed view: gathered through staging
  Tensor small;       // float64 [3]
  Tensor scalar;      // int64 0-d
  Tensor narrowed;    // float32 columns 5..17 of [40, 30]: non-contiguous
  Bytes value;
};

Items make_items(uint64_t seed) {
  Generator gen(seed);
  Items it;
  it.big = Tensor::uniform({96, 700}, -1, 1, gen);
  it.strided = Tensor::uniform({45, 130}, -4, 4, gen, DType::kBFloat16).transpose(0, 1);
  it.small = Tensor::uniform({3}, -1, 1, gen, DType::kFloat64);
  it.scalar = Tensor::full({}, 123456789, DType::kInt64);
  it.narrowed = Tensor::uniform({40, 30}, -1, 1, gen).narrow(1, 5, 12);
  it.value = Bytes(5000);
  for (size_t i = 0; i < it.value.size(); ++i) it.value[i] = static_cast<std::byte>(i * 7 + 3);
  return it;
}

TestSavePlanner planner_for(const Items& it) {
  TestSavePlanner p;
  p.add_chunk("big", it.big, {0, 0}, {96, 700});
  p.add_chunk("strided", it.strided, {0, 0}, {130, 45});
  p.add_chunk("small", it.small, {0}, {3});
  p.add_chunk("scalar", it.scalar, {}, {});
  p.add_value("blob", ValueKind::kBytes, it.value);
  p.add_chunk("narrowed", it.narrowed, {0, 0}, {40, 12});
  return p;
}

// docs/format.md §2: items in plan order at 4096-aligned offsets, zeros between, no trailing padding.
std::string expected_file(const Items& it) {
  std::vector<std::string> items = {row_major_bytes(it.big), row_major_bytes(it.strided), row_major_bytes(it.small),
                                    row_major_bytes(it.scalar),
                                    std::string(reinterpret_cast<const char*>(it.value.data()), it.value.size()),
                                    row_major_bytes(it.narrowed)};
  std::string file;
  for (const auto& bytes : items) {
    file.resize(align4k(file.size()), '\0');
    file += bytes;
  }
  return file;
}

struct WriteMode {
  bool direct;
  bool refuse_direct;  // the file system answers O_DIRECT with EINVAL (tmpfs)
  size_t threads;
  uint64_t block_size;
  uint64_t unit_bytes;
  size_t staging;
};

TEST(perf_IoEngine, DataFileBytesMatchTheFormatInEveryWriteMode) {
  const uint64_t seed = test_seed("perf_IoEngine.DataFileBytesMatchTheFormatInEveryWriteMode");
  Items it = make_items(seed);
  const std::string expected = expected_file(it);
  const std::vector<WriteMode> modes = {
      {false, false, 1, 1 << 20, 16 << 20, 8 << 20},  // buffered, one thread
      {true, false, 1, 1 << 20, 16 << 20, 8 << 20},   // direct, one thread
      {true, false, 3, 4096, 16384, 8192},            // direct, 3 threads, units and staging pieces inside items
      {false, false, 3, 4096, 8192, 4096},            // buffered, 3 threads
      {true, true, 2, 4096, 16384, 8192},             // direct asked, refused: buffered fallback
      {true, false, 2, 1000, 8192, 8192},             // blocks not page-aligned: one unit per item
      {true, false, 4, 12288, 12288, 8192},           // blocks larger than staging: streamed checksums
  };
  for (const WriteMode& m : modes) {
    SCOPED_TRACE("direct=" + std::to_string(m.direct) + " refuse=" + std::to_string(m.refuse_direct) +
                 " threads=" + std::to_string(m.threads) + " block=" + std::to_string(m.block_size));
    TempDir dir;
    const std::string path = dir.path() + "/ckpt";
    auto fs = std::make_shared<RecordingFileSystem>(m.refuse_direct);
    FileSystemWriterOptions opts;
    opts.filesystem = fs;
    opts.direct_io = m.direct;
    opts.io_threads = m.threads;
    opts.block_size = m.block_size;
    opts.write_unit_bytes = m.unit_bytes;
    opts.staging_buffer_bytes = m.staging;
    std::vector<TestSavePlanner> ranks = {planner_for(it)};
    run_save(path, ranks, opts);
    const std::string file = slurp(path + "/data-00000.bin");
    ASSERT_EQ(file.size(), expected.size());
    EXPECT_TRUE(file == expected) << "data file differs from the format's layout";
    if (m.refuse_direct) {
      for (const auto& w : fs->writes) EXPECT_FALSE(w.direct);
    }

    // Checksums: XXH3-64 of each block of each item, computed here.
    Metadata md = read_fs_metadata(*default_file_system(), path);
    EXPECT_EQ(md.block_size, m.block_size);
    size_t locations = 0;
    auto check = [&](const std::string& key, const StorageLocation& loc) {
      ++locations;
      ASSERT_EQ(loc.block_checksums.size(), (loc.byte_length + m.block_size - 1) / m.block_size) << key;
      for (size_t b = 0; b < loc.block_checksums.size(); ++b) {
        const uint64_t at = loc.byte_offset + b * m.block_size;
        const uint64_t n = std::min<uint64_t>(m.block_size, loc.byte_offset + loc.byte_length - at);
        EXPECT_EQ(loc.block_checksums[b], XXH3_64bits(expected.data() + at, n)) << key << " block " << b;
      }
    };
    for (const auto& [key, t] : md.tensors) check(key, t.chunks.at(0).location);
    for (const auto& [key, v] : md.values) check(key, v.location);
    EXPECT_EQ(locations, 6u);
  }
}

TEST(perf_IoEngine, WriterStatsReportDirectOrFallback) {
  Items it = make_items(test_seed("perf_IoEngine.WriterStatsReportDirectOrFallback"));
  TempDir dir;
  auto refusing = std::make_shared<RecordingFileSystem>(true);
  FileSystemWriter writer(dir.path() + "/ckpt", {.filesystem = refusing});
  writer.set_up(0, 1, true);
  writer.prepare();
  TestSavePlanner p = planner_for(it);
  writer.write_data(p.plan(), p);
  EXPECT_FALSE(writer.stats().direct);
  EXPECT_TRUE(writer.stats().buffered_fallback);
  // Buffered writes leave the alignment gaps as holes: at most the file size.
  EXPECT_GT(writer.stats().bytes_written, 250000u);
  EXPECT_LE(writer.stats().bytes_written, expected_file(it).size());
  writer.abort();
}

TEST(perf_IoEngine, PageAlignedTensorMemoryIsWrittenWithoutStaging) {
  TempDir dir;
  auto fs = std::make_shared<RecordingFileSystem>(false);
  // 3 pages + 100 bytes of page-aligned memory.
  AlignedBuffer memory(3 * 4096 + 100);
  for (size_t i = 0; i < memory.size(); ++i) memory.data()[i] = static_cast<std::byte>(i % 251);
  Tensor t = Tensor::from_blob(memory.data(), {static_cast<int64_t>(memory.size())}, DType::kUInt8);
  TestSavePlanner p;
  p.add_chunk("t", t, {0}, t.sizes());
  std::vector<TestSavePlanner> ranks = {p};
  run_save(dir.path() + "/ckpt", ranks, {.filesystem = fs});
  bool direct = false;
  for (const auto& w : fs->writes) direct = direct || w.direct;
  EXPECT_EQ(slurp(dir.path() + "/ckpt/data-00000.bin"),
            std::string(reinterpret_cast<const char*>(memory.data()), memory.size()));
  if (!direct) GTEST_SKIP() << "the temp directory's file system refuses O_DIRECT";
  // The three whole pages went from the tensor's own memory; only the tail was staged.
  bool from_tensor = false;
  for (const auto& w : fs->writes) {
    if (w.data == memory.data() && w.length == 3 * 4096 && w.offset == 0) from_tensor = true;
  }
  EXPECT_TRUE(from_tensor);
}

std::vector<ReadRecord> data_reads(const std::vector<ReadRecord>& reads);

// Three simulated ranks' files, read back in every way.
class perf_Reads : public ::testing::Test {
 protected:
  void SetUp() override {
    const uint64_t seed = test_seed("perf_Reads");
    Generator gen(seed);
    a_ = Tensor::uniform({90, 256}, -1, 1, gen);                      // Shard(0) over 3 files
    b_ = Tensor::uniform({64, 300}, -1, 1, gen, DType::kBFloat16);    // Shard(1) over 3 files
    c_ = Tensor::uniform({7}, -1, 1, gen, DType::kFloat64);           // small, in rank 0's file
    ranks_.resize(3);
    for (int r = 0; r < 3; ++r) {
      ranks_[r].add_chunk("a", a_.narrow(0, 30 * r, 30), {30 * r, 0}, {90, 256});
      ranks_[r].add_chunk("b", b_.narrow(1, 100 * r, 100), {0, 100 * r}, {64, 300});
    }
    ranks_[0].add_chunk("c", c_, {0}, {7});
    path_ = dir_.path() + "/ckpt";
    run_save(path_, ranks_, {.block_size = 4096});
    for (int r = 0; r < 3; ++r) file_bytes_ += slurp(path_ + "/" + data_file_name(r)).size();
  }

  // Loads the whole tensors into sentinel-filled targets; returns the preads.
  std::vector<ReadRecord> load_all(FileSystemReaderOptions options) {
    auto fs = std::make_shared<FaultInjectingFileSystem>();
    options.filesystem = fs;
    Tensor a = Tensor::full({90, 256}, -777);
    Tensor b = Tensor::full({64, 300}, -777, DType::kBFloat16);
    Tensor c = Tensor::full({7}, -777, DType::kFloat64);
    TestLoadPlanner planner;
    planner.want("a", a, {0, 0});
    planner.want("b", b, {0, 0});
    planner.want("c", c, {0});
    run_load(path_, planner, options);
    EXPECT_TRUE(equal(a, a_));
    EXPECT_TRUE(equal(b, b_));
    EXPECT_TRUE(equal(c, c_));
    return data_reads(fs->reads());
  }

  TempDir dir_;
  std::string path_;
  Tensor a_, b_, c_;
  std::vector<TestSavePlanner> ranks_;
  uint64_t file_bytes_ = 0;
};

// The preads of data files (the metadata file is read too).
std::vector<ReadRecord> data_reads(const std::vector<ReadRecord>& reads) {
  std::vector<ReadRecord> out;
  for (const auto& r : reads) {
    if (r.path.find("/data-") != std::string::npos) out.push_back(r);
  }
  return out;
}

// Sum of read lengths and the number of distinct bytes they cover, per file.
std::pair<uint64_t, uint64_t> read_and_distinct(const std::vector<ReadRecord>& reads) {
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> by_file;
  uint64_t total = 0;
  for (const auto& r : reads) {
    by_file[r.path].push_back({r.offset, r.offset + r.length});
    total += r.length;
  }
  uint64_t distinct = 0;
  for (auto& [file, ranges] : by_file) {
    std::sort(ranges.begin(), ranges.end());
    uint64_t end = 0;
    for (auto [b, e] : ranges) {
      b = std::max(b, end);
      if (e > b) distinct += e - b;
      end = std::max(end, e);
    }
  }
  return {total, distinct};
}

TEST_F(perf_Reads, WholeFilesCoalesceIntoOneReadEachInParallel) {
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct" : "buffered");
    auto reads = load_all({.io_threads = 3, .direct_io = direct});
    // Every item of a file is needed: adjacent items (alignment padding
    // between them) coalesce, so each file is one read.
    std::set<std::string> files;
    for (const auto& r : reads) files.insert(r.path);
    EXPECT_EQ(files.size(), 3u);
    EXPECT_EQ(reads.size(), 3u);
    auto [total, distinct] = read_and_distinct(reads);
    EXPECT_EQ(total, distinct) << "a byte was read twice";
    EXPECT_LE(total, align4k(file_bytes_) + 3 * 4096);
  }
}

TEST_F(perf_Reads, SmallReadLimitBoundsEveryReadAndReadsEachByteOnce) {
  // 8 KiB reads: a 30 KiB chunk is never held whole.
  auto reads = load_all({.io_threads = 4, .direct_io = true, .max_read_bytes = 8192});
  for (const auto& r : reads) EXPECT_LE(r.length, 8192u + 4096u);
  auto [total, distinct] = read_and_distinct(reads);
  EXPECT_EQ(total, distinct);
  EXPECT_GE(reads.size(), file_bytes_ / 8192);
}

TEST_F(perf_Reads, ColumnBoxesReadOnlyTouchedBlocksWithBoundedBuffers) {
  // Columns 10..19 of "a" (rows of 1 KiB, blocks of 4 KiB): each block of
  // every chunk holds 4 rows, so every block is touched — read in pieces of
  // at most 8 KiB (+ alignment), never a whole chunk.
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  Tensor dest = Tensor::full({90, 10}, -5);
  TestLoadPlanner planner;
  planner.want("a", dest, {0, 10});
  run_load(path_, planner, {.filesystem = fs, .io_threads = 2, .max_read_bytes = 8192});
  EXPECT_TRUE(equal(dest, a_.narrow(1, 10, 10).contiguous()));
  for (const auto& r : data_reads(fs->reads())) EXPECT_LE(r.length, 8192u + 4096u);
  auto [total, distinct] = read_and_distinct(data_reads(fs->reads()));
  EXPECT_EQ(total, distinct);
  // The three chunks of "a" (30 KiB each; direct reads round the last block
  // up to its page), nothing of "b" or "c".
  EXPECT_GE(total, 3u * 30720);
  EXPECT_LE(total, 3u * align4k(30720));
}

TEST_F(perf_Reads, ReaderStatsCountNeededAndReadBytes) {
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  FileSystemReader reader(path_, {.filesystem = fs, .io_threads = 2, .direct_io = false});
  reader.set_up(0, 1, true);
  Metadata md = reader.read_metadata();
  Tensor dest = Tensor::full({64, 300}, -1, DType::kBFloat16);
  TestLoadPlanner planner;
  planner.want("b", dest, {0, 0});
  planner.set_metadata(md);
  reader.read_data(planner.create_local_plan(), planner);
  EXPECT_TRUE(equal(dest, b_));
  EXPECT_EQ(reader.stats().bytes_needed, 64u * 300 * 2);
  uint64_t data_bytes = 0;
  for (const auto& r : data_reads(fs->reads())) data_bytes += r.length;  // buffered: no rounding, no short reads
  EXPECT_EQ(reader.stats().bytes_read, data_bytes);
  EXPECT_EQ(reader.stats().bytes_sent, 0u);
}

TEST_F(perf_Reads, CorruptBlockIsReportedWithKeyAndOffset) {
  // Flip one byte inside "a"'s chunk in rank 1's file.
  Metadata md = read_fs_metadata(*default_file_system(), path_);
  const ChunkMeta& chunk = md.tensors.at("a").chunks.at(1);
  const std::string file = path_ + "/" + chunk.location.file;
  std::string bytes = slurp(file);
  bytes[chunk.location.byte_offset + 5000] ^= 0x40;
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  Tensor a = Tensor::full({90, 256}, -777);
  TestLoadPlanner planner;
  planner.want("a", a, {0, 0});
  try {
    run_load(path_, planner, {.io_threads = 3});
    ADD_FAILURE() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("block 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dcpp
