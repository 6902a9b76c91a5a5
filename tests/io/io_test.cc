#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/io.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "io/thread_pool.h"
#include "support/distributed.h"
#include "support/expect_error.h"

namespace dcpp {

using testing::expect_error;
namespace {

using testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}


// Open descriptors of this process, to see that file objects release theirs.
size_t open_descriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// The descriptor of this process open on `path` (-1 if none).
int descriptor_of(const std::string& path) {
  const std::string want = std::filesystem::canonical(path).string();
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec).string() == want) {
      return std::stoi(entry.path().filename().string());
    }
  }
  return -1;
}

TEST(io_PosixFileSystem, WriteReadRoundTrip) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string path = dir.path() + "/f.bin";
  std::unique_ptr<WritableFile> w = fs.open_write(path);
  EXPECT_EQ(w->path(), path);
  EXPECT_FALSE(w->direct());
  w->write_all("hello", 5, 0);
  w->write_all("world", 5, 10);  // a hole of 5 zero bytes in between
  w->sync();
  w->close();
  w->close();  // a second close is a no-op
  EXPECT_EQ(fs.file_size(path), 15u);
  EXPECT_EQ(read_file(path), std::string("hello\0\0\0\0\0world", 15));

  std::unique_ptr<RandomAccessFile> r = fs.open_read(path);
  EXPECT_EQ(r->path(), path);
  EXPECT_EQ(r->size(), 15u);
  char buf[32] = {};
  EXPECT_EQ(r->read_full(buf, 5, 10), 5u);
  EXPECT_EQ(std::string(buf, 5), "world");
}

TEST(io_PosixFileSystem, ReadsComeBackShortAtEndOfFile) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string path = dir.path() + "/ten";
  write_file(path, "0123456789");
  std::unique_ptr<RandomAccessFile> r = fs.open_read(path);
  char buf[64] = {};
  EXPECT_EQ(r->read(buf, 64, 6), 4u);  // spans the end: short, no error
  EXPECT_EQ(std::string(buf, 4), "6789");
  EXPECT_EQ(r->read(buf, 8, 10), 0u);  // at the end
  EXPECT_EQ(r->read(buf, 8, 1000), 0u);  // past it
  EXPECT_EQ(r->read_full(buf, 64, 3), 7u);  // stops at the end
  EXPECT_EQ(std::string(buf, 7), "3456789");
  EXPECT_EQ(r->read_full(buf, 0, 0), 0u);
  // The size follows the file as it grows.
  write_file(path, std::string(5000, 'z'));
  EXPECT_EQ(r->size(), 5000u);
  EXPECT_EQ(r->read_full(buf, 64, 4990), 10u);
}

TEST(io_PosixFileSystem, ErrorsCarryPathOffsetAndCode) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string missing = dir.path() + "/nope/file";
  Error e = expect_error([&] { fs.open_read(missing); }, ErrorCode::kNotFound);
  EXPECT_NE(e.message().find(missing), std::string::npos) << e.message();
  expect_error([&] { fs.open_write(missing); }, ErrorCode::kNotFound);
  // Without create, a missing file stays missing.
  expect_error([&] { fs.open_write(dir.path() + "/absent", {.create = false}); }, ErrorCode::kNotFound);

  // Reading a directory: EISDIR, reported as kIo with the context.
  std::unique_ptr<RandomAccessFile> d = fs.open_read(dir.path());
  char buf[8];
  e = expect_error([&] { d->read(buf, 8, 4096); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find(dir.path()), std::string::npos);
  EXPECT_NE(e.message().find("offset 4096"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("length 8"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("errno " + std::to_string(EISDIR)), std::string::npos) << e.message();

  // A write to a full device: ENOSPC, with the path and range.
  if (std::filesystem::exists("/dev/full")) {
    std::unique_ptr<WritableFile> full = fs.open_write("/dev/full", {.create = false, .truncate = false});
    e = expect_error([&] { full->write_all("abc", 3, 0); }, ErrorCode::kIo);
    EXPECT_NE(e.message().find("/dev/full"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("length 3"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("errno " + std::to_string(ENOSPC)), std::string::npos) << e.message();
  }

  const std::string path = dir.path() + "/w.bin";
  fs.open_write(path)->close();
  expect_error([&] { fs.file_size(missing); }, ErrorCode::kNotFound);
  expect_error([&] { fs.rename(missing, dir.path() + "/x"); }, ErrorCode::kNotFound);
  expect_error([&] { fs.list_dir(missing); }, ErrorCode::kNotFound);
  expect_error([&] { fs.mkdir(missing); }, ErrorCode::kNotFound);  // parent missing
  // Exclusive create of an existing file: EEXIST is an I/O error.
  expect_error([&] { fs.open_write(path, {.exclusive = true}); }, ErrorCode::kIo);
  // Without truncate the bytes stay.
  write_file(path, "keep me");
  std::unique_ptr<WritableFile> w = fs.open_write(path, {.create = false, .truncate = false});
  w->write_all("K", 1, 0);
  w->close();
  EXPECT_EQ(read_file(path), "Keep me");
}

TEST(io_PosixFileSystem, CloseReportsItsError) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string path = dir.path() + "/c";
  std::unique_ptr<WritableFile> w = fs.open_write(path);
  const int fd = descriptor_of(path);
  ASSERT_GE(fd, 0);
  // The descriptor goes away behind the file's back, so its close fails (EBADF).
  ASSERT_EQ(::close(fd), 0);
  Error e = expect_error([&] { w->close(); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("errno " + std::to_string(EBADF)), std::string::npos) << e.message();
  w->close();  // released all the same: nothing left to report
}

TEST(io_PosixFileSystem, DestroyedFilesReleaseTheirDescriptors) {
  TempDir dir;
  PosixFileSystem fs;
  const size_t base = open_descriptors();
  {
    std::unique_ptr<WritableFile> w = fs.open_write(dir.path() + "/a");
    std::unique_ptr<WritableFile> v = fs.open_write(dir.path() + "/b", {.try_direct = true});
    std::unique_ptr<RandomAccessFile> r = fs.open_read(dir.path() + "/a");
    EXPECT_EQ(open_descriptors(), base + 3);
    w->write_all("x", 1, 0);  // never closed explicitly
  }
  EXPECT_EQ(open_descriptors(), base);
  // Through a wrapper too.
  auto faulty = std::make_shared<FaultInjectingFileSystem>();
  {
    std::unique_ptr<WritableFile> w = faulty->open_write(dir.path() + "/c");
    std::unique_ptr<RandomAccessFile> r = faulty->open_read(dir.path() + "/c");
    EXPECT_EQ(open_descriptors(), base + 2);
  }
  EXPECT_EQ(open_descriptors(), base);
  EXPECT_EQ(faulty->count(FsOp::kClose), 0u) << "a destructor's silent close is no counted close() call";
}

TEST(io_PosixFileSystem, DisjointWritesFromSeveralThreads) {
  TempDir dir;
  auto faulty = std::make_shared<FaultInjectingFileSystem>();
  for (FileSystem* fs : std::vector<FileSystem*>{default_file_system().get(), faulty.get()}) {
    const std::string path = dir.path() + "/mt";
    constexpr size_t kThreads = 4, kPieces = 64, kPiece = kIoAlignment;
    std::unique_ptr<WritableFile> w = fs->open_write(path, {.try_direct = true});
    std::vector<std::thread> threads;
    for (size_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        AlignedBuffer piece(kPiece);
        for (size_t p = t; p < kPieces; p += kThreads) {
          std::memset(piece.data(), static_cast<int>('a' + p % 26), kPiece);
          w->write_all(piece.data(), kPiece, p * kPiece);
        }
      });
    }
    for (auto& t : threads) t.join();
    w->sync();
    w->close();
    std::string expected;
    for (size_t p = 0; p < kPieces; ++p) expected += std::string(kPiece, static_cast<char>('a' + p % 26));
    EXPECT_EQ(read_file(path), expected);
  }
  EXPECT_EQ(faulty->count(FsOp::kPwrite), 64u);
  EXPECT_EQ(faulty->bytes_written(), 64u * kIoAlignment);
}

TEST(io_PosixFileSystem, DirectoriesRenameRemove) {

  TempDir dir;
  PosixFileSystem fs;
  const std::string a = dir.path() + "/a";
  EXPECT_EQ(fs.file_type(a), FileType::kNone);
  EXPECT_TRUE(fs.mkdir(a));
  EXPECT_FALSE(fs.mkdir(a));  // already there
  EXPECT_EQ(fs.file_type(a), FileType::kDirectory);
  write_file(a + "/z", "1");
  write_file(a + "/b", "22");
  fs.create_directories(a + "/sub/deeper");
  write_file(a + "/sub/deeper/f", "333");
  EXPECT_EQ(fs.list_dir(a), (std::vector<std::string>{"b", "sub", "z"}));
  EXPECT_EQ(fs.file_type(a + "/b"), FileType::kRegular);
  EXPECT_EQ(fs.file_size(a + "/b"), 2u);
  fs.fsync_dir(a);
  EXPECT_GT(fs.free_space(a), 0u);

  fs.rename(a + "/b", a + "/c");
  EXPECT_FALSE(fs.exists(a + "/b"));
  EXPECT_EQ(read_file(a + "/c"), "22");
  EXPECT_TRUE(fs.remove(a + "/c"));
  EXPECT_FALSE(fs.remove(a + "/c"));
  // A non-empty directory cannot be removed with remove().
  expect_error([&] { fs.remove(a + "/sub"); }, ErrorCode::kIo);
  fs.remove_all(a);
  EXPECT_EQ(fs.file_type(a), FileType::kNone);
  fs.remove_all(a);  // missing: fine
}

TEST(io_PosixFileSystem, RenameExchangeSwapsOrSaysUnsupported) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string x = dir.path() + "/x", y = dir.path() + "/y";
  fs.mkdir(x);
  fs.mkdir(y);
  write_file(x + "/which", "x");
  write_file(y + "/which", "y");
  if (!fs.rename_exchange(x, y)) GTEST_SKIP() << "this file system has no RENAME_EXCHANGE";
  EXPECT_EQ(read_file(x + "/which"), "y");
  EXPECT_EQ(read_file(y + "/which"), "x");
  expect_error([&] { fs.rename_exchange(x, dir.path() + "/missing"); }, ErrorCode::kNotFound);
}

TEST(io_PosixFileSystem, DirectIoAttemptWorksEitherWay) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string path = dir.path() + "/d.bin";
  std::unique_ptr<WritableFile> w = fs.open_write(path, {.try_direct = true});
  std::cout << "O_DIRECT " << (w->direct() ? "accepted" : "refused, fell back to buffered") << "\n";
  AlignedBuffer buf(2 * kIoAlignment);
  for (size_t i = 0; i < buf.size(); ++i) buf.data()[i] = static_cast<std::byte>(i * 7);
  w->write_all(buf.data(), buf.size(), kIoAlignment);
  std::unique_ptr<RandomAccessFile> r = fs.open_read(path, {.try_direct = true});
  EXPECT_EQ(r->direct(), w->direct());
  AlignedBuffer back(2 * kIoAlignment);
  EXPECT_EQ(r->read_full(back.data(), back.size(), kIoAlignment), back.size());
  EXPECT_EQ(std::memcmp(buf.data(), back.data(), buf.size()), 0);
  w->truncate(5000);
  w->sync();
  w->close();
  EXPECT_EQ(fs.file_size(path), 5000u);
  EXPECT_EQ(r->size(), 5000u);
}

// Counts the calls that reach it; everything else passes through.
class MkdirWatcher final : public ForwardingFileSystem {
 public:
  using ForwardingFileSystem::ForwardingFileSystem;
  bool mkdir(const std::string& path) override {
    seen.push_back(path);
    return ForwardingFileSystem::mkdir(path);
  }
  std::vector<std::string> seen;
};

class SyncWatcher final : public ForwardingWritableFile {
 public:
  SyncWatcher(std::unique_ptr<WritableFile> target, int& syncs)
      : ForwardingWritableFile(std::move(target)), syncs_(syncs) {}
  void sync() override {
    ++syncs_;
    ForwardingWritableFile::sync();
  }

 private:
  int& syncs_;
};

TEST(io_ForwardingFileSystem, ForwardsEveryCallAndAnOverrideSeesExactlyItsOwn) {
  TempDir dir;
  // The target counts what arrives, per op.
  auto target = std::make_shared<FaultInjectingFileSystem>();
  MkdirWatcher fs(target);
  EXPECT_EQ(&fs.target(), target.get());
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  EXPECT_TRUE(fs.mkdir(a));
  EXPECT_TRUE(fs.mkdir(b));
  std::unique_ptr<WritableFile> w = fs.open_write(a + "/f");
  w->write_all("abc", 3, 0);
  w->sync();
  w->truncate(2);
  w->close();
  std::unique_ptr<RandomAccessFile> r = fs.open_read(a + "/f");
  char buf[8];
  EXPECT_EQ(r->read(buf, 8, 0), 2u);
  EXPECT_EQ(r->size(), 2u);
  EXPECT_EQ(fs.file_size(a + "/f"), 2u);
  EXPECT_EQ(fs.file_type(a + "/f"), FileType::kRegular);
  EXPECT_EQ(fs.list_dir(a), (std::vector<std::string>{"f"}));
  fs.fsync_dir(a);
  EXPECT_GT(fs.free_space(a), 0u);
  fs.rename(a + "/f", a + "/g");
  const bool exchanged = fs.rename_exchange(a, b);
  const std::string holder = exchanged ? b : a;
  EXPECT_TRUE(fs.remove(holder + "/g"));
  fs.remove_all(a);
  fs.remove_all(b);

  EXPECT_EQ(fs.seen, (std::vector<std::string>{a, b}));
  const std::vector<std::pair<FsOp, uint64_t>> expected = {
      {FsOp::kOpen, 2},     {FsOp::kPwrite, 1},    {FsOp::kPread, 1},   {FsOp::kSync, 1},
      {FsOp::kTruncate, 1}, {FsOp::kClose, 1},     {FsOp::kRename, 1},  {FsOp::kRenameExchange, 1},
      {FsOp::kMkdir, 2},    {FsOp::kRemove, 1},    {FsOp::kRemoveAll, 2}, {FsOp::kListDir, 1},
      {FsOp::kFileType, 1}, {FsOp::kFileSize, 1},  {FsOp::kFsyncDir, 1}, {FsOp::kFreeSpace, 1},
  };
  ASSERT_EQ(expected.size(), static_cast<size_t>(kNumFsOps));
  for (const auto& [op, n] : expected) EXPECT_EQ(target->count(op), n) << fs_op_name(op);
  EXPECT_FALSE(std::filesystem::exists(a));

  // A forwarding file that overrides sync sees the syncs and nothing else.
  int syncs = 0;
  target->reset_counters();
  SyncWatcher f(fs.open_write(dir.path() + "/h"), syncs);
  EXPECT_EQ(f.path(), dir.path() + "/h");
  f.write_all("xy", 2, 0);
  f.sync();
  f.sync();
  f.close();
  EXPECT_EQ(syncs, 2);
  EXPECT_EQ(target->count(FsOp::kSync), 2u);
  EXPECT_EQ(target->count(FsOp::kPwrite), 1u);
  EXPECT_EQ(target->count(FsOp::kClose), 1u);
  EXPECT_EQ(read_file(dir.path() + "/h"), "xy");
}

TEST(io_FaultInjectingFileSystem, FailsExactlyTheKthCallOfAnOp) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 3, .error = EIO});
  std::unique_ptr<WritableFile> h = fs->open_write(dir.path() + "/f");
  h->write_all("a", 1, 0);
  h->write_all("b", 1, 1);
  Error e = expect_error([&] { h->write_all("c", 1, 2); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find("injected"), std::string::npos);
  EXPECT_NE(e.message().find("offset 2"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("errno " + std::to_string(EIO)), std::string::npos) << e.message();
  h->write_all("d", 1, 3);  // the 4th goes through again
  h->close();
  EXPECT_EQ(fs->count(FsOp::kPwrite), 4u);
  EXPECT_EQ(fs->count(FsOp::kOpen), 1u);
  EXPECT_EQ(fs->count(FsOp::kClose), 1u);
  EXPECT_EQ(fs->bytes_written(), 3u);
  EXPECT_EQ(fs->faults_triggered(), 1u);
  EXPECT_EQ(read_file(dir.path() + "/f"), std::string("ab\0d", 4));
}

TEST(io_FaultInjectingFileSystem, FileObjectCallsFailAtExactlyTheNth) {
  TempDir dir;
  write_file(dir.path() + "/r", "0123456789");
  for (FsOp op : {FsOp::kPwrite, FsOp::kPread, FsOp::kSync, FsOp::kTruncate, FsOp::kClose}) {
    SCOPED_TRACE(fs_op_name(op));
    auto fs = std::make_shared<FaultInjectingFileSystem>();
    fs->add_fault({.op = op, .nth = 2, .error = EIO, .path_contains = "/w"});
    // Three files, each getting one call of `op`: only the second fails.
    std::vector<std::unique_ptr<WritableFile>> writers;
    std::unique_ptr<RandomAccessFile> reader = fs->open_read(dir.path() + "/r");
    for (int i = 0; i < 3; ++i) writers.push_back(fs->open_write(dir.path() + "/w" + std::to_string(i)));
    for (int i = 0; i < 3; ++i) {
      WritableFile& w = *writers[static_cast<size_t>(i)];
      char buf[4];
      auto call = [&] {
        switch (op) {
          case FsOp::kPwrite: w.write("x", 1, 0); break;
          // Reads of a file the filter does not match never fail; the
          // writers' paths match, so the filter is checked on reads too.
          case FsOp::kPread: fs->open_read(w.path())->read(buf, 4, 0); break;
          case FsOp::kSync: w.sync(); break;
          case FsOp::kTruncate: w.truncate(7); break;
          case FsOp::kClose: w.close(); break;
          default: break;
        }
      };
      if (i == 1) {
        Error e = expect_error(call, ErrorCode::kIo);
        EXPECT_NE(e.message().find("injected fault: " + std::string(fs_op_name(op))), std::string::npos) << e.message();
        EXPECT_NE(e.message().find(w.path()), std::string::npos) << e.message();
      } else {
        call();
      }
      char b2[4];
      EXPECT_EQ(reader->read(b2, 4, 0), 4u);  // never matches the filter
    }
    EXPECT_EQ(fs->count(op), op == FsOp::kPread ? 6u : 3u);
    EXPECT_EQ(fs->faults_triggered(), 1u);
    if (op == FsOp::kClose) {
      // The failed close released the file all the same.
      EXPECT_NO_THROW(writers[1]->close());
      EXPECT_EQ(fs->count(FsOp::kClose), 3u);
    }
  }
}

TEST(io_FaultInjectingFileSystem, PathFilterRepeatAndErrnoMapping) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kOpen, .nth = 2, .error = EACCES, .path_contains = "secret", .repeat = true});
  fs->add_fault({.op = FsOp::kSync, .nth = 1, .error = ENOENT});
  std::unique_ptr<WritableFile> a = fs->open_write(dir.path() + "/secret1");  // 1st match: fine
  std::unique_ptr<WritableFile> b = fs->open_write(dir.path() + "/plain");    // not matching
  expect_error([&] { fs->open_write(dir.path() + "/secret2"); }, ErrorCode::kIo);
  expect_error([&] { fs->open_read(dir.path() + "/secret1"); }, ErrorCode::kIo);
  expect_error([&] { a->sync(); }, ErrorCode::kNotFound);
  a->sync();
  a->close();
  b->close();
  EXPECT_EQ(fs->count(FsOp::kOpen), 4u);
  EXPECT_EQ(fs->count(FsOp::kSync), 2u);
  EXPECT_FALSE(fs->exists(dir.path() + "/secret2"));
}

TEST(io_FaultInjectingFileSystem, ShortWritesAreCompletedByWriteAll) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 1, .short_write = true});
  std::unique_ptr<WritableFile> h = fs->open_write(dir.path() + "/f");
  std::string data = "0123456789abcdef";
  size_t n = h->write(data.data(), data.size(), 0);
  EXPECT_EQ(n, 8u);  // cut short, no error
  h->write_all(data.data() + n, data.size() - n, n);
  h->close();
  EXPECT_EQ(read_file(dir.path() + "/f"), data);

  // write_all loops over a short write on its own.
  fs->clear_faults();
  fs->reset_counters();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 1, .short_write = true});
  std::unique_ptr<WritableFile> g = fs->open_write(dir.path() + "/g");
  g->write_all(data.data(), data.size(), 0);
  g->close();
  EXPECT_EQ(fs->count(FsOp::kPwrite), 2u);
  EXPECT_EQ(read_file(dir.path() + "/g"), data);
}

// A file whose writes make no progress: write_all must not spin.
class StuckFile final : public WritableFile {
 public:
  StuckFile() : WritableFile("stuck", false) {}
  size_t write(const void*, size_t, uint64_t) override { return 0; }
  void sync() override {}
  void truncate(uint64_t) override {}
  void close() override {}
};

TEST(io_WritableFile, WriteAllFailsWhenAWriteMakesNoProgress) {
  StuckFile f;
  Error e = expect_error([&] { f.write_all("abc", 3, 7); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find("'stuck' at offset 7 length 3 made no progress"), std::string::npos) << e.message();
}

TEST(io_FaultInjectingFileSystem, SpaceLimitGivesEnospc) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->set_space_limit(10);
  std::unique_ptr<WritableFile> h = fs->open_write(dir.path() + "/f");
  h->write_all("abcdef", 6, 0);
  Error e = expect_error([&] { h->write_all("ghijkl", 6, 6); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find(std::strerror(ENOSPC)), std::string::npos) << e.message();
  h->close();
  EXPECT_EQ(fs->file_size(dir.path() + "/f"), 10u);  // the crossing write was cut short
}

TEST(io_FaultInjectingFileSystem, RecordsReadsAndExchangeFallback) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  write_file(dir.path() + "/r", std::string(10000, 'x'));
  std::unique_ptr<RandomAccessFile> h = fs->open_read(dir.path() + "/r");
  char buf[100];
  h->read_full(buf, 100, 4096);
  h->read_full(buf, 50, 9990);  // only 10 bytes left
  auto reads = fs->reads();
  ASSERT_EQ(reads.size(), 3u);  // the second read_full tries again and sees EOF
  EXPECT_EQ(reads[0].offset, 4096u);
  EXPECT_EQ(reads[0].length, 100u);
  EXPECT_EQ(reads[1].offset, 9990u);
  EXPECT_EQ(reads[2].offset, 10000u);
  EXPECT_EQ(fs->bytes_read(), 110u);

  fs->add_fault({.op = FsOp::kRenameExchange, .nth = 1, .error = EINVAL});
  fs->mkdir(dir.path() + "/a");
  fs->mkdir(dir.path() + "/b");
  EXPECT_FALSE(fs->rename_exchange(dir.path() + "/a", dir.path() + "/b"));
  fs->add_fault({.op = FsOp::kRename, .nth = 1, .error = EXDEV});
  expect_error([&] { fs->rename(dir.path() + "/a", dir.path() + "/c"); }, ErrorCode::kIo);
  EXPECT_TRUE(fs->exists(dir.path() + "/a"));
}

TEST(io_AlignedBuffer, AlignedZeroedMovable) {
  AlignedBuffer a(10000, /*zero=*/true);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % kIoAlignment, 0u);
  EXPECT_EQ(a.size(), 10000u);
  EXPECT_EQ(a.capacity(), 12288u);
  for (size_t i = 0; i < a.capacity(); ++i) ASSERT_EQ(a.data()[i], std::byte{0});
  std::byte* p = a.data();
  AlignedBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_TRUE(a.empty());
  AlignedBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_TRUE(AlignedBuffer(0).empty());
  EXPECT_EQ(align_up(0, 4096), 0u);
  EXPECT_EQ(align_up(1, 4096), 4096u);
  EXPECT_EQ(align_up(4096, 4096), 4096u);
  EXPECT_EQ(align_up(4097, 4096), 8192u);
}

TEST(io_ThreadPool, ResultsExceptionsAndDrain) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(3);
    EXPECT_EQ(pool.size(), 3u);
    std::vector<std::future<int>> futures;
    for (int i = 0; i < 100; ++i) {
      futures.push_back(pool.submit([i, &ran] {
        ++ran;
        return i * i;
      }));
    }
    for (int i = 0; i < 100; ++i) EXPECT_EQ(futures[i].get(), i * i);
    auto bad = pool.submit([]() -> int { throw Error(ErrorCode::kIo, "disk on fire"); });
    try {
      bad.get();
      ADD_FAILURE() << "exception did not propagate";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kIo);
      EXPECT_EQ(e.message(), "disk on fire");
    }
    auto std_bad = pool.submit([] { throw std::runtime_error("plain"); });
    EXPECT_THROW(std_bad.get(), std::runtime_error);
    // Queued work still runs when the pool is destroyed.
    for (int i = 0; i < 50; ++i) pool.submit([&ran] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 150);
}

}  // namespace
}  // namespace dcpp
