#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/io.h"
#include "io/thread_pool.h"
#include "support/distributed.h"

namespace dcpp {
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

template <typename F>
Error expect_error(F&& f, ErrorCode code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected an Error with code " << error_code_name(code);
  return Error(ErrorCode::kInternal, "no error");
}

TEST(io_PosixFileSystem, WriteReadRoundTrip) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string path = dir.path() + "/f.bin";
  FileHandle h = fs.open(path, OpenFlags::create_write());
  ASSERT_TRUE(h.valid());
  fs.write_all(h, "hello", 5, 0);
  fs.write_all(h, "world", 5, 10);  // a hole of 5 zero bytes in between
  fs.fdatasync(h);
  fs.fsync(h);
  fs.close(h);
  EXPECT_FALSE(h.valid());
  EXPECT_EQ(fs.file_size(path), 15u);
  EXPECT_EQ(read_file(path), std::string("hello\0\0\0\0\0world", 15));

  FileHandle r = fs.open(path, OpenFlags::read_only());
  char buf[32] = {};
  EXPECT_EQ(fs.read_full(r, buf, 5, 10), 5u);
  EXPECT_EQ(std::string(buf, 5), "world");
  EXPECT_EQ(fs.read_full(r, buf, 32, 10), 5u);  // stops at end of file
  EXPECT_EQ(fs.pread(r, buf, 4, 100), 0u);
  fs.close(r);
  fs.close(r);  // closing an invalid handle is a no-op
}

TEST(io_PosixFileSystem, ErrorsCarryPathOffsetAndCode) {
  TempDir dir;
  PosixFileSystem fs;
  const std::string missing = dir.path() + "/nope/file";
  Error e = expect_error([&] { fs.open(missing, OpenFlags::read_only()); }, ErrorCode::kNotFound);
  EXPECT_NE(e.message().find(missing), std::string::npos) << e.message();

  const std::string path = dir.path() + "/w.bin";
  FileHandle w = fs.open(path, OpenFlags::create_write());
  char buf[8];
  // Reading a write-only descriptor: EBADF, reported as kIo with the context.
  e = expect_error([&] { fs.pread(w, buf, 8, 4096); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find(path), std::string::npos);
  EXPECT_NE(e.message().find("offset 4096"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("length 8"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("errno " + std::to_string(EBADF)), std::string::npos) << e.message();
  fs.close(w);

  expect_error([&] { fs.file_size(missing); }, ErrorCode::kNotFound);
  expect_error([&] { fs.rename(missing, dir.path() + "/x"); }, ErrorCode::kNotFound);
  expect_error([&] { fs.list_dir(missing); }, ErrorCode::kNotFound);
  expect_error([&] { fs.mkdir(missing); }, ErrorCode::kNotFound);  // parent missing
  // Exclusive create of an existing file: EEXIST is an I/O error.
  expect_error(
      [&] {
        OpenFlags f = OpenFlags::create_write();
        f.exclusive = true;
        fs.open(path, f);
      },
      ErrorCode::kIo);
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
  OpenFlags flags = OpenFlags::create_write();
  flags.read = true;
  flags.try_direct = true;
  FileHandle h = fs.open(path, flags);
  std::cout << "O_DIRECT " << (h.direct ? "accepted" : "refused, fell back to buffered") << "\n";
  AlignedBuffer buf(2 * kIoAlignment);
  for (size_t i = 0; i < buf.size(); ++i) buf.data()[i] = static_cast<std::byte>(i * 7);
  fs.write_all(h, buf.data(), buf.size(), kIoAlignment);
  AlignedBuffer back(2 * kIoAlignment);
  EXPECT_EQ(fs.read_full(h, back.data(), back.size(), kIoAlignment), back.size());
  EXPECT_EQ(std::memcmp(buf.data(), back.data(), buf.size()), 0);
  fs.truncate(h, 5000);
  fs.close(h);
  EXPECT_EQ(fs.file_size(path), 5000u);
}

TEST(io_FaultInjectingFileSystem, FailsExactlyTheKthCallOfAnOp) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 3, .error = EIO});
  FileHandle h = fs->open(dir.path() + "/f", OpenFlags::create_write());
  fs->write_all(h, "a", 1, 0);
  fs->write_all(h, "b", 1, 1);
  Error e = expect_error([&] { fs->write_all(h, "c", 1, 2); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find("injected"), std::string::npos);
  EXPECT_NE(e.message().find("offset 2"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("errno " + std::to_string(EIO)), std::string::npos) << e.message();
  fs->write_all(h, "d", 1, 3);  // the 4th goes through again
  fs->close(h);
  EXPECT_EQ(fs->count(FsOp::kPwrite), 4u);
  EXPECT_EQ(fs->count(FsOp::kOpen), 1u);
  EXPECT_EQ(fs->count(FsOp::kClose), 1u);
  EXPECT_EQ(fs->bytes_written(), 3u);
  EXPECT_EQ(fs->faults_triggered(), 1u);
  EXPECT_EQ(read_file(dir.path() + "/f"), std::string("ab\0d", 4));
}

TEST(io_FaultInjectingFileSystem, PathFilterRepeatAndErrnoMapping) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kOpen, .nth = 2, .error = EACCES, .path_contains = "secret", .repeat = true});
  fs->add_fault({.op = FsOp::kFsync, .nth = 1, .error = ENOENT});
  FileHandle a = fs->open(dir.path() + "/secret1", OpenFlags::create_write());  // 1st match: fine
  FileHandle b = fs->open(dir.path() + "/plain", OpenFlags::create_write());    // not matching
  expect_error([&] { fs->open(dir.path() + "/secret2", OpenFlags::create_write()); }, ErrorCode::kIo);
  expect_error([&] { fs->open(dir.path() + "/secret3", OpenFlags::create_write()); }, ErrorCode::kIo);
  expect_error([&] { fs->fsync(a); }, ErrorCode::kNotFound);
  fs->fsync(a);
  fs->close(a);
  fs->close(b);
  EXPECT_EQ(fs->count(FsOp::kOpen), 4u);
  EXPECT_EQ(fs->count(FsOp::kFsync), 2u);
  EXPECT_FALSE(fs->exists(dir.path() + "/secret2"));
}

TEST(io_FaultInjectingFileSystem, ShortWritesAreCompletedByWriteAll) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 1, .short_write = true});
  FileHandle h = fs->open(dir.path() + "/f", OpenFlags::create_write());
  std::string data = "0123456789abcdef";
  size_t n = fs->pwrite(h, data.data(), data.size(), 0);
  EXPECT_EQ(n, 8u);  // cut short, no error
  fs->write_all(h, data.data() + n, data.size() - n, n);
  fs->close(h);
  EXPECT_EQ(read_file(dir.path() + "/f"), data);

  // write_all loops over a short write on its own.
  fs->clear_faults();
  fs->reset_counters();
  fs->add_fault({.op = FsOp::kPwrite, .nth = 1, .short_write = true});
  FileHandle g = fs->open(dir.path() + "/g", OpenFlags::create_write());
  fs->write_all(g, data.data(), data.size(), 0);
  fs->close(g);
  EXPECT_EQ(fs->count(FsOp::kPwrite), 2u);
  EXPECT_EQ(read_file(dir.path() + "/g"), data);
}

TEST(io_FaultInjectingFileSystem, SpaceLimitGivesEnospc) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->set_space_limit(10);
  FileHandle h = fs->open(dir.path() + "/f", OpenFlags::create_write());
  fs->write_all(h, "abcdef", 6, 0);
  Error e = expect_error([&] { fs->write_all(h, "ghijkl", 6, 6); }, ErrorCode::kIo);
  EXPECT_NE(e.message().find(std::strerror(ENOSPC)), std::string::npos) << e.message();
  fs->close(h);
  EXPECT_EQ(fs->file_size(dir.path() + "/f"), 10u);  // the crossing write was cut short
}

TEST(io_FaultInjectingFileSystem, RecordsReadsAndExchangeFallback) {
  TempDir dir;
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  write_file(dir.path() + "/r", std::string(10000, 'x'));
  FileHandle h = fs->open(dir.path() + "/r", OpenFlags::read_only());
  char buf[100];
  fs->read_full(h, buf, 100, 4096);
  fs->read_full(h, buf, 50, 9990);  // only 10 bytes left
  fs->close(h);
  auto reads = fs->reads();
  ASSERT_EQ(reads.size(), 3u);  // the second read_full tries again and sees EOF
  EXPECT_EQ(reads[0].offset, 4096u);
  EXPECT_EQ(reads[0].length, 100u);
  EXPECT_EQ(reads[1].offset, 9990u);
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
