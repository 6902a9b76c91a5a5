#include <gtest/gtest.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "storage/fs/block_reader.h"
#include "storage/test_planners.h"
#include "support/distributed.h"
#include "support/expect_error.h"

namespace dcpp {

using testing::expect_error;
namespace {

namespace stdfs = std::filesystem;
using testing::run_load;
using testing::run_save;
using testing::TempDir;
using testing::test_seed;
using testing::TestLoadPlanner;
using testing::TestSavePlanner;


bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Chunks `global` along `dim` over `world` ranks with docs/design.md's chunk math
// (chunk c = ceil(S/n), trailing ranks may own nothing).
void shard(std::vector<TestSavePlanner>& ranks, const std::string& key, const Tensor& global, int64_t dim) {
  const int64_t world = static_cast<int64_t>(ranks.size());
  const int64_t s = global.size(dim);
  const int64_t c = (s + world - 1) / world;
  for (int64_t r = 0; r < world; ++r) {
    int64_t lo = std::min(r * c, s), hi = std::min((r + 1) * c, s);
    if (hi <= lo) continue;
    Shape offsets(global.dim(), 0);
    offsets[dim] = lo;
    ranks[r].add_chunk(key, global.narrow(dim, lo, hi - lo), offsets, global.sizes());
  }
}

Tensor sentinel_like(const Shape& shape, DType dtype) { return Tensor::full(shape, -7, dtype); }

Bytes bytes_of(const std::string& s) {
  Bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

struct Globals {
  Tensor f32, bf16, i64, flags, scalar;
};

Globals make_globals(uint64_t seed) {
  Generator gen(seed);
  Globals g;
  g.f32 = Tensor::uniform({37, 29}, -1, 1, gen, DType::kFloat32);
  g.bf16 = Tensor::uniform({64, 100}, -4, 4, gen, DType::kBFloat16);
  g.i64 = Tensor::empty({1000}, DType::kInt64);
  for (int64_t i = 0; i < 1000; ++i) g.i64.data<int64_t>()[i] = (i * 7919) ^ (int64_t{1} << 40) * (i % 5);
  g.flags = Tensor::empty({17, 5}, DType::kBool);
  for (int64_t i = 0; i < 85; ++i) g.flags.data<bool>()[i] = (i * 13) % 3 == 0;
  g.scalar = Tensor::full({}, 2.718281828459045, DType::kFloat64);
  return g;
}

// Saves the globals over 3 ranks (different dims), with values, block 4096.
void save_globals(const std::string& path, const Globals& g, FileSystemWriterOptions options = {}) {
  std::vector<TestSavePlanner> ranks(3);
  shard(ranks, "layer.weight", g.f32, 0);
  shard(ranks, "layer.bf16", g.bf16, 1);
  shard(ranks, "counts", g.i64, 0);
  shard(ranks, "mask", g.flags, 0);
  ranks[2].add_chunk("scalar", g.scalar, {}, {});
  ranks[1].add_value("step", ValueKind::kInt64, Bytes(8, std::byte{3}));
  ranks[0].add_value("name", ValueKind::kString, bytes_of("a run name"));
  if (options.block_size == kDefaultBlockSize) options.block_size = 4096;
  run_save(path, ranks, options);
}

// Loads every global with a different sharding (2 ranks, the other dim) into
// sentinel-filled tensors and compares with slices of the originals.
void check_resharded_load(const std::string& path, const Globals& g, FileSystemReaderOptions options = {}) {
  for (int rank = 0; rank < 2; ++rank) {
    TestLoadPlanner planner;
    auto box = [&](const Tensor& global, int64_t dim) {
      int64_t s = global.size(dim), c = (s + 1) / 2;
      int64_t lo = std::min(rank * c, s), hi = std::min((rank + 1) * c, s);
      Shape off(global.dim(), 0);
      off[dim] = lo;
      return std::make_pair(global.narrow(dim, lo, hi - lo), off);
    };
    auto [ef, of] = box(g.f32, 1);
    auto [eb, ob] = box(g.bf16, 0);
    auto [ei, oi] = box(g.i64, 0);
    auto [em, om] = box(g.flags, 1);
    Tensor f = sentinel_like(ef.sizes(), DType::kFloat32);
    Tensor b = sentinel_like(eb.sizes(), DType::kBFloat16);
    Tensor i = sentinel_like(ei.sizes(), DType::kInt64);
    Tensor m = Tensor::zeros(em.sizes(), DType::kBool);
    Tensor sc = sentinel_like({}, DType::kFloat64);
    Tensor f64 = sentinel_like(ef.sizes(), DType::kFloat64);  // converted on load
    planner.want("layer.weight", f, of);
    planner.want("layer.bf16", b, ob);
    planner.want("counts", i, oi);
    planner.want("mask", m, om);
    planner.want("scalar", sc, {});
    planner.want_value("step");
    planner.want_value("name");
    run_load(path, planner, options, rank);
    EXPECT_TRUE(equal(f, ef.contiguous())) << "rank " << rank;
    EXPECT_TRUE(equal(b, eb.contiguous())) << "rank " << rank;
    EXPECT_TRUE(equal(i, ei.contiguous())) << "rank " << rank;
    EXPECT_TRUE(equal(m, em.contiguous())) << "rank " << rank;
    EXPECT_TRUE(equal(sc, g.scalar));
    EXPECT_EQ(planner.values.at("step"), Bytes(8, std::byte{3}));
    EXPECT_EQ(planner.values.at("name"), bytes_of("a run name"));

    TestLoadPlanner conv;
    conv.want("layer.weight", f64, of);
    run_load(path, conv, options, rank);
    EXPECT_TRUE(equal(f64, ef.to(DType::kFloat64)));
  }
}

TEST(storage_FsStorage, RoundTripWithResharding) {
  TempDir dir;
  Globals g = make_globals(test_seed("FsStorage.RoundTripWithResharding"));
  const std::string path = dir.path() + "/ckpt";
  save_globals(path, g);
  EXPECT_EQ(checkpoint_state(*default_file_system(), path), CheckpointState::kComplete);
  EXPECT_FALSE(stdfs::exists(staging_path(path)));
  std::vector<std::string> names;
  for (const auto& e : stdfs::directory_iterator(path)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"data-00000.bin", "data-00001.bin", "data-00002.bin", "dcpp.metadata"}));
  check_resharded_load(path, g);
  check_resharded_load(path, g, {.filesystem = nullptr, .io_threads = 3});

  FileSystemReader reader(path);
  Metadata md = reader.read_metadata();
  EXPECT_EQ(md.world_size, 3);
  EXPECT_EQ(md.block_size, 4096u);
  EXPECT_EQ(md.format, "dcpp");
  EXPECT_EQ(md.tensors.at("layer.weight").chunks.size(), 3u);
  EXPECT_EQ(md.tensors.at("layer.bf16").dtype, DType::kBFloat16);
  EXPECT_EQ(md.values.at("step").kind, ValueKind::kInt64);
  EXPECT_EQ(md.paths.at("mask")[0].key, "mask");
}

TEST(storage_FsStorage, DataFileLayoutIsAlignedRawLittleEndianWithBlockChecksums) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  std::vector<TestSavePlanner> ranks(1);
  Tensor a = Tensor::arange(3, DType::kInt32);    // 12 bytes
  Tensor b = Tensor::arange(2000, DType::kInt16);  // 4000 bytes, two 3000-byte blocks
  ranks[0].add_chunk("a", a, {0}, {3});
  ranks[0].add_chunk("b", b, {0}, {2000});
  FileSystemWriterOptions opts;
  opts.block_size = 3000;
  run_save(path, ranks, opts);
  std::string bytes = slurp(path + "/data-00000.bin");
  ASSERT_EQ(bytes.size(), 4096u + 4000u);
  EXPECT_EQ(bytes.substr(0, 12), std::string("\0\0\0\0\1\0\0\0\2\0\0\0", 12));
  EXPECT_EQ(bytes.substr(12, 4096 - 12), std::string(4096 - 12, '\0'));
  EXPECT_EQ(bytes.substr(4096, 6), std::string("\0\0\1\0\2\0", 6));
  EXPECT_EQ(bytes.substr(4096 + 2 * 1999, 2), std::string("\xcf\x07", 2));  // 1999 = 0x07cf

  Metadata md = FileSystemReader(path).read_metadata();
  const StorageLocation& lb = md.tensors.at("b").chunks[0].location;
  EXPECT_EQ(lb.byte_offset, 4096u);
  EXPECT_EQ(lb.byte_length, 4000u);
  ASSERT_EQ(lb.block_checksums.size(), 2u);
  EXPECT_EQ(lb.block_checksums[0], XXH3_64bits(bytes.data() + 4096, 3000));
  EXPECT_EQ(lb.block_checksums[1], XXH3_64bits(bytes.data() + 4096 + 3000, 1000));
}

TEST(storage_FsStorage, NonContiguousViewsAndDirectIo) {
  TempDir dir;
  Generator gen(test_seed("FsStorage.NonContiguousViewsAndDirectIo"));
  Tensor base = Tensor::uniform({7, 5}, -1, 1, gen);
  Tensor t = base.transpose(0, 1);  // [5, 7], not contiguous
  ASSERT_FALSE(t.is_contiguous());
  Tensor big = Tensor::uniform({300, 70}, -1, 1, gen, DType::kFloat64);
  for (bool direct : {false, true}) {
    const std::string path = dir.path() + (direct ? "/direct" : "/buffered");
    std::vector<TestSavePlanner> ranks(2);
    ranks[0].add_chunk("t", t.narrow(0, 0, 3), {0, 0}, {5, 7});
    ranks[1].add_chunk("t", t.narrow(0, 3, 2), {3, 0}, {5, 7});
    ranks[0].add_chunk("big", big.narrow(1, 10, 50), {0, 10}, {300, 70});
    ranks[1].add_chunk("big", big.narrow(1, 0, 10), {0, 0}, {300, 70});
    ranks[1].add_chunk("big", big.narrow(1, 60, 10), {0, 60}, {300, 70});
    FileSystemWriterOptions opts;
    opts.direct_io = direct;
    opts.block_size = 8192;
    opts.staging_buffer_bytes = 8192;  // several pieces per item
    run_save(path, ranks, opts);
    TestLoadPlanner planner;
    Tensor dt = sentinel_like({5, 7}, DType::kFloat32);
    Tensor dbig = sentinel_like({300, 70}, DType::kFloat64);
    planner.want("t", dt, {0, 0});
    planner.want("big", dbig, {0, 0});
    run_load(path, planner);
    EXPECT_TRUE(equal(dt, t.contiguous())) << (direct ? "direct" : "buffered");
    EXPECT_TRUE(equal(dbig, big)) << (direct ? "direct" : "buffered");
    // Direct writes pad the last item to a page; the file is cut back to its end.
    EXPECT_EQ(stdfs::file_size(path + "/data-00000.bin"), 4096u + 300u * 50 * 8);
  }
}

// The box reads only the checksum blocks it touches: one chunk [16, 2048]
// float32 (rows of 8192 bytes = 2 blocks of 4096), so each expectation below
// is worked out by hand from the layout.
class storage_PartialReads : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/ckpt";
    Generator gen(test_seed("FsStorage.PartialReads"));
    global_ = Tensor::uniform({16, 2048}, -1, 1, gen);
    std::vector<TestSavePlanner> ranks(1);
    ranks[0].add_chunk("w", global_, {0, 0}, {16, 2048});
    FileSystemWriterOptions opts;
    opts.block_size = 4096;
    run_save(path_, ranks, opts);
    fs_ = std::make_shared<FaultInjectingFileSystem>();
    reader_ = std::make_unique<FileSystemReader>(path_, FileSystemReaderOptions{fs_, 1});
    reader_->set_up(0, 1, true);
    md_ = reader_->read_metadata();
    fs_->reset_counters();
  }

  // Loads the box into a sentinel tensor, checks values, returns the preads.
  std::vector<ReadRecord> load_box(int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
    fs_->reset_counters();
    TestLoadPlanner planner;
    Tensor dest = sentinel_like({nr, nc}, DType::kFloat32);
    planner.want("w", dest, {r0, c0});
    planner.set_metadata(md_);
    reader_->read_data(planner.create_local_plan(), planner);
    EXPECT_TRUE(equal(dest, global_.narrow(0, r0, nr).narrow(1, c0, nc).contiguous()));
    return fs_->reads();
  }

  TempDir dir_;
  std::string path_;
  Tensor global_;
  std::shared_ptr<FaultInjectingFileSystem> fs_;
  std::unique_ptr<FileSystemReader> reader_;
  Metadata md_;
};

TEST_F(storage_PartialReads, WholeRowsAreOneCoalescedRead) {
  auto reads = load_box(3, 4, 0, 2048);  // bytes [24576, 57344): blocks 6..13
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].offset, 24576u);
  EXPECT_EQ(reads[0].length, 32768u);
  EXPECT_EQ(fs_->bytes_read(), 32768u);
}

TEST_F(storage_PartialReads, NarrowColumnsReadOneBlockPerRow) {
  auto reads = load_box(0, 16, 0, 16);  // each row touches only its first block
  ASSERT_EQ(reads.size(), 16u);
  for (size_t r = 0; r < 16; ++r) {
    EXPECT_EQ(reads[r].offset, r * 8192);
    EXPECT_EQ(reads[r].length, 4096u);
  }
  EXPECT_EQ(fs_->bytes_read(), 16u * 4096);
}

TEST_F(storage_PartialReads, ColumnsStraddlingABlockBoundaryCoalesce) {
  auto reads = load_box(0, 16, 1000, 100);  // bytes 4000..4400 of each row: both blocks
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].offset, 0u);
  EXPECT_EQ(reads[0].length, 16u * 8192);
}

TEST_F(storage_PartialReads, SmallBoxReadsOneBlock) {
  auto reads = load_box(5, 1, 2000, 48);  // bytes 48960..49152: block 11
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].offset, 11u * 4096);
  EXPECT_EQ(reads[0].length, 4096u);
  auto two_rows = load_box(5, 2, 1024, 1);  // block 11 and block 13: not consecutive
  ASSERT_EQ(two_rows.size(), 2u);
  EXPECT_EQ(two_rows[0].offset, 11u * 4096);
  EXPECT_EQ(two_rows[1].offset, 13u * 4096);
}

TEST_F(storage_PartialReads, FlippedByteIsCorruptOnlyForBoxesTouchingItsBlock) {
  // Row 2 is bytes [16384, 24576); its second block (5) holds columns 1024..2047.
  const std::string data = path_ + "/data-00000.bin";
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5 * 4096 + 10);
    char c;
    f.seekg(5 * 4096 + 10);
    f.read(&c, 1);
    c ^= 0x20;
    f.seekp(5 * 4096 + 10);
    f.write(&c, 1);
  }
  Tensor dest = sentinel_like({1, 100}, DType::kFloat32);
  TestLoadPlanner planner;
  planner.want("w", dest, {2, 1500});
  planner.set_metadata(md_);
  Error e = expect_error([&] { reader_->read_data(planner.create_local_plan(), planner); }, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(e.message(), "data-00000.bin")) << e.message();
  EXPECT_TRUE(contains(e.message(), "byte offset 20480")) << e.message();
  EXPECT_TRUE(contains(e.message(), "key 'w'")) << e.message();
  EXPECT_TRUE(contains(e.message(), "rank 0")) << e.message();
  // No unverified byte reached the destination.
  EXPECT_TRUE(equal(dest, sentinel_like({1, 100}, DType::kFloat32)));
  // Boxes that avoid block 5 still load.
  load_box(0, 2, 0, 2048);
  load_box(2, 1, 0, 1024);
  load_box(3, 13, 0, 2048);
}

TEST_F(storage_PartialReads, TruncatedDataFileIsCorruptNamingFileAndOffset) {
  stdfs::resize_file(path_ + "/data-00000.bin", 10000);
  load_box(0, 1, 0, 2048);  // bytes [0, 8192): still there
  Tensor dest = sentinel_like({1, 2048}, DType::kFloat32);
  TestLoadPlanner planner;
  planner.want("w", dest, {1, 0});
  planner.set_metadata(md_);
  Error e = expect_error([&] { reader_->read_data(planner.create_local_plan(), planner); }, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(e.message(), "data-00000.bin")) << e.message();
  EXPECT_TRUE(contains(e.message(), "byte offset 10000")) << e.message();
}

TEST(storage_FsStorage, MissingOrIncompleteCheckpointIsNotFound) {
  TempDir dir;
  Error e = expect_error([&] { FileSystemReader(dir.path() + "/nothing").read_metadata(); }, ErrorCode::kNotFound);
  EXPECT_TRUE(contains(e.message(), "does not exist")) << e.message();
  stdfs::create_directory(dir.path() + "/half");
  std::ofstream(dir.path() + "/half/data-00000.bin") << "xx";
  e = expect_error([&] { FileSystemReader(dir.path() + "/half").read_metadata(); }, ErrorCode::kNotFound);
  EXPECT_TRUE(contains(e.message(), "incomplete")) << e.message();
  EXPECT_EQ(checkpoint_state(*default_file_system(), dir.path() + "/half"), CheckpointState::kIncomplete);
}

TEST(storage_FsStorage, MetadataFileDamageIsCorrupt) {
  TempDir dir;
  Globals g = make_globals(1);
  const std::string path = dir.path() + "/ckpt";
  save_globals(path, g);
  stdfs::resize_file(path + "/dcpp.metadata", stdfs::file_size(path + "/dcpp.metadata") - 3);
  Error e = expect_error([&] { FileSystemReader(path).read_metadata(); }, ErrorCode::kCorrupt);
  EXPECT_TRUE(contains(e.message(), "dcpp.metadata")) << e.message();
}

// ---- staging and commit ----

Globals distinct_globals(int which) { return make_globals(1000 + which); }

void expect_checkpoint_holds(const std::string& path, const Globals& g) { check_resharded_load(path, g); }

TEST(storage_FsStorage, FailedSaveOverAnExistingCheckpointLeavesItIntact) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Globals old_g = distinct_globals(1), new_g = distinct_globals(2);
  save_globals(path, old_g);

  // Count the pwrites of a clean save, then fail each k-th one in turn.
  auto counter = std::make_shared<FaultInjectingFileSystem>();
  save_globals(dir.path() + "/probe", new_g, {.filesystem = counter});
  const uint64_t total = counter->count(FsOp::kPwrite);
  ASSERT_GT(total, 3u);
  for (uint64_t k = 1; k <= total; ++k) {
    auto fs = std::make_shared<FaultInjectingFileSystem>();
    fs->add_fault({.op = FsOp::kPwrite, .nth = k, .error = EIO});
    expect_error([&] { save_globals(path, new_g, {.filesystem = fs}); }, ErrorCode::kIo);
    ASSERT_FALSE(stdfs::exists(staging_path(path))) << "k = " << k;
    ASSERT_EQ(checkpoint_state(*default_file_system(), path), CheckpointState::kComplete);
  }
  expect_checkpoint_holds(path, old_g);

  // Failures at each commit step: sync of a data file, the metadata rename,
  // the directory fsync, the exchange itself.
  std::vector<Fault> faults = {
      {.op = FsOp::kSync, .nth = 2, .error = EIO},
      {.op = FsOp::kRename, .nth = 1, .error = EIO, .path_contains = "dcpp.metadata"},
      {.op = FsOp::kFsyncDir, .nth = 1, .error = EIO},
      {.op = FsOp::kRenameExchange, .nth = 1, .error = EIO},
      {.op = FsOp::kOpen, .nth = 1, .error = ENOSPC, .path_contains = "dcpp.metadata.tmp"},
  };
  for (const Fault& f : faults) {
    auto fs = std::make_shared<FaultInjectingFileSystem>();
    fs->add_fault(f);
    expect_error([&] { save_globals(path, new_g, {.filesystem = fs}); }, ErrorCode::kIo);
    EXPECT_EQ(fs->faults_triggered(), 1u) << fs_op_name(f.op);
    EXPECT_FALSE(stdfs::exists(staging_path(path))) << fs_op_name(f.op);
  }
  expect_checkpoint_holds(path, old_g);

  // A full disk.
  auto full = std::make_shared<FaultInjectingFileSystem>();
  full->set_space_limit(20000);
  Error e = expect_error([&] { save_globals(path, new_g, {.filesystem = full}); }, ErrorCode::kIo);
  EXPECT_TRUE(contains(e.message(), std::strerror(ENOSPC))) << e.message();
  expect_checkpoint_holds(path, old_g);

  // Short writes are absorbed; the save then succeeds and replaces the old one.
  auto shorty = std::make_shared<FaultInjectingFileSystem>();
  shorty->add_fault({.op = FsOp::kPwrite, .nth = 2, .short_write = true, .repeat = true});
  save_globals(path, new_g, {.filesystem = shorty});
  expect_checkpoint_holds(path, new_g);
  EXPECT_FALSE(stdfs::exists(staging_path(path)));
}

TEST(storage_FsStorage, CrashBeforeCommitLeavesOldCheckpointAndNextSaveCleansUp) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Globals old_g = distinct_globals(3), new_g = distinct_globals(4);
  save_globals(path, old_g);
  // A "crash": data written, no finish, no abort.
  {
    std::vector<TestSavePlanner> ranks(1);
    ranks[0].add_chunk("counts", new_g.i64, {0}, {1000});
    FileSystemWriter w(path);
    w.set_up(0, 1, true);
    w.prepare();
    w.write_data(ranks[0].plan(), ranks[0]);
  }
  ASSERT_TRUE(stdfs::exists(staging_path(path)));
  expect_checkpoint_holds(path, old_g);
  save_globals(path, new_g);
  EXPECT_FALSE(stdfs::exists(staging_path(path)));
  expect_checkpoint_holds(path, new_g);
}

TEST(storage_FsStorage, ExchangeFallbackWhenRenameExchangeIsUnsupported) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  save_globals(path, distinct_globals(5));
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kRenameExchange, .nth = 1, .error = EINVAL});
  Globals g = distinct_globals(6);
  save_globals(path, g, {.filesystem = fs});
  expect_checkpoint_holds(path, g);
  std::vector<std::string> left;
  for (const auto& e : stdfs::directory_iterator(dir.path())) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"ckpt"});
}

// Without RENAME_EXCHANGE a crash between "path -> .ckpt.dcpp-old" and
// "staging -> path" leaves only the old checkpoint, aside: loads read it, and
// the next save puts it back before replacing it.
TEST(storage_FsStorage, CheckpointLeftAsideByACrashedSwapIsLoadedAndRestored) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Globals old_g = distinct_globals(7);
  save_globals(path, old_g);
  stdfs::rename(path, dir.path() + "/.ckpt.dcpp-old");
  EXPECT_EQ(set_aside_path(path), dir.path() + "/.ckpt.dcpp-old");
  EXPECT_EQ(resolve_checkpoint_dir(*default_file_system(), path), dir.path() + "/.ckpt.dcpp-old");
  expect_checkpoint_holds(path, old_g);
  EXPECT_FALSE(stdfs::exists(path)) << "a load must not move files";

  Globals new_g = distinct_globals(8);
  save_globals(path, new_g);
  expect_checkpoint_holds(path, new_g);
  std::vector<std::string> left;
  for (const auto& e : stdfs::directory_iterator(dir.path())) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{"ckpt"});

  // An incomplete set-aside directory is never read.
  stdfs::rename(path, dir.path() + "/.ckpt.dcpp-old");
  stdfs::remove(dir.path() + "/.ckpt.dcpp-old/dcpp.metadata");
  EXPECT_EQ(resolve_checkpoint_dir(*default_file_system(), path), path);
  expect_error([&] { check_resharded_load(path, new_g); }, ErrorCode::kNotFound);
}

TEST(storage_FsStorage, OverwriteFalseRefusesBeforeWritingAnything) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Globals g = distinct_globals(7);
  save_globals(path, g);
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  Error e = expect_error([&] { save_globals(path, distinct_globals(8), {.filesystem = fs, .overwrite = false}); },
                         ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(e.message(), "overwrite is false")) << e.message();
  EXPECT_EQ(fs->count(FsOp::kPwrite), 0u);
  EXPECT_EQ(fs->count(FsOp::kMkdir), 0u);
  EXPECT_EQ(fs->count(FsOp::kOpen), 0u);
  expect_checkpoint_holds(path, g);
  // Into an empty or missing path, overwrite = false is fine.
  stdfs::create_directory(dir.path() + "/empty");
  save_globals(dir.path() + "/empty", g, {.overwrite = false});
  save_globals(dir.path() + "/new/nested/ckpt", g, {.overwrite = false});
  expect_checkpoint_holds(dir.path() + "/new/nested/ckpt", g);
}

TEST(storage_FsStorage, NeverReplacesSomethingThatIsNotACheckpoint) {
  TempDir dir;
  const std::string path = dir.path() + "/mydata";
  stdfs::create_directory(path);
  std::ofstream(path + "/thesis.tex") << "precious";
  Error e = expect_error([&] { save_globals(path, distinct_globals(9)); }, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(e.message(), "not a dcpp checkpoint")) << e.message();
  EXPECT_EQ(slurp(path + "/thesis.tex"), "precious");
  EXPECT_FALSE(stdfs::exists(staging_path(path)));

  std::ofstream(dir.path() + "/afile") << "x";
  expect_error([&] { save_globals(dir.path() + "/afile", distinct_globals(9)); }, ErrorCode::kInvalidArgument);
  EXPECT_EQ(slurp(dir.path() + "/afile"), "x");

  // An incomplete dcpp directory (data files only) is replaced.
  const std::string half = dir.path() + "/half";
  stdfs::create_directory(half);
  std::ofstream(half + "/data-00000.bin") << "partial";
  Globals g = distinct_globals(10);
  save_globals(half, g);
  expect_checkpoint_holds(half, g);
}

TEST(storage_FsStorage, AbortRemovesOnlyTheStagingDirectory) {
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Globals g = distinct_globals(11);
  save_globals(path, g);
  std::vector<TestSavePlanner> ranks(2);
  shard(ranks, "counts", g.i64, 0);
  FileSystemWriter w0(path), w1(path);
  w0.set_up(0, 2, true);
  w1.set_up(1, 2, false);
  w0.prepare();
  w0.write_data(ranks[0].plan(), ranks[0]);
  w1.write_data(ranks[1].plan(), ranks[1]);
  ASSERT_TRUE(stdfs::exists(staging_path(path) + "/data-00001.bin"));
  w1.abort();
  EXPECT_FALSE(stdfs::exists(staging_path(path) + "/data-00001.bin"));
  EXPECT_TRUE(stdfs::exists(staging_path(path) + "/data-00000.bin"));
  w0.abort();
  EXPECT_FALSE(stdfs::exists(staging_path(path)));
  expect_checkpoint_holds(path, g);
}

TEST(storage_FsStorage, BlockReaderReadsBoxesDirectly) {
  // The reusable helper the serving reader builds on.
  TempDir dir;
  const std::string path = dir.path() + "/ckpt";
  Tensor t = Tensor::arange(60, DType::kFloat32).view({3, 4, 5});
  std::vector<TestSavePlanner> ranks(1);
  ranks[0].add_chunk("t", t, {0, 0, 0}, {3, 4, 5});
  run_save(path, ranks, {.block_size = 16});
  Metadata md = FileSystemReader(path).read_metadata();
  fs_detail::BlockReader reader(nullptr, path, md.block_size, 4);
  const ChunkMeta& c = md.tensors.at("t").chunks[0];
  Tensor dest = Tensor::full({2, 2, 3}, -1, DType::kInt64);
  reader.read_box("t", c.location, DType::kFloat32, c.sizes, {1, 1, 2}, {2, 2, 3}, dest);
  // Element [i, j, k] of the box is 20 (1 + i) + 5 (1 + j) + 2 + k.
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(dest.at({i, j, k}), 20 * (1 + i) + 5 * (1 + j) + 2 + k);
    }
  }
  expect_error([&] { reader.read_box("t", c.location, DType::kFloat32, c.sizes, {2, 0, 0}, {2, 1, 1}, dest); },
               ErrorCode::kInvalidArgument);
  StorageLocation evil = c.location;
  evil.file = "../../ckpt/data-00000.bin";  // "../<sibling>/<file>" is a reference (version 2); deeper is not
  expect_error([&] { reader.read_bytes("t", evil); }, ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace dcpp
