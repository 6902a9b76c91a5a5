// FaultInjectingFileSystem: a FileSystem for tests that fails one exact call
// of the seam, cuts writes short, runs out of space, and counts what passes.
//
// It wraps a target file system (POSIX by default) and the file objects it
// opens: a test fails the third write, a sync, a rename with a chosen errno
// (the `nth` call of an op whose path contains a filter), cuts a write short
// as a real short write would, simulates a full disk, or counts the calls and
// the bytes a load read (and where). Calls are counted per op (all calls,
// matching a fault or not), so a test that counts the calls of a clean run
// can then fail exactly the k-th one.
//
// Ownership: the target is shared; the files it returns refer to this object
// and must be destroyed before it. Thread-safety: the bookkeeping is
// serialised by one mutex, so it is as thread-safe as its target.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dcpp/forwarding_file_system.h"
#include "dcpp/io.h"
#include "dcpp/testing/fs_op.h"

namespace dcpp {

// One planned failure: the `nth` call (1-based, counted among calls of `op`
// whose path contains `path_contains`) fails with `error` — or, for
// kPwrite with `short_write`, writes only half the bytes asked (at least one)
// and succeeds, as a real short write would. With `repeat` every matching
// call from the nth on fails.
struct Fault {
  FsOp op = FsOp::kPwrite;
  uint64_t nth = 1;
  int error = 5;  // EIO
  std::string path_contains = {};
  bool short_write = false;
  bool repeat = false;
};

// One read as the target saw it (for "read only the touched blocks" tests).
struct ReadRecord {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class FaultInjectingFileSystem final : public ForwardingFileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystemPtr target = default_file_system());

  void add_fault(Fault fault);
  void clear_faults();
  // Simulated ENOSPC: writes succeed until `bytes` have been written in
  // total (counting from now), the one crossing the limit is cut short, the
  // next fail with ENOSPC. UINT64_MAX (the default) is no limit.
  void set_space_limit(uint64_t bytes);

  uint64_t count(FsOp op) const;
  uint64_t bytes_written() const;
  uint64_t bytes_read() const;
  std::vector<ReadRecord> reads() const;
  uint64_t faults_triggered() const;
  void reset_counters();

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) override;
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) override;
  void rename(const std::string& from, const std::string& to) override;
  bool rename_exchange(const std::string& a, const std::string& b) override;
  bool mkdir(const std::string& path) override;
  bool remove(const std::string& path) override;
  void remove_all(const std::string& path) override;
  std::vector<std::string> list_dir(const std::string& path) override;
  FileType file_type(const std::string& path) override;
  uint64_t file_size(const std::string& path) override;
  void fsync_dir(const std::string& path) override;
  uint64_t free_space(const std::string& path) override;

 private:
  class ReadFile;
  class WriteFile;
  enum class Action { kNone, kFail, kShortWrite };
  struct Decision {
    Action action = Action::kNone;
    int error = 0;
  };
  struct ArmedFault {
    Fault fault;
    uint64_t matched = 0;
  };
  // Counts the call and decides its fate; `path2` is a second path it touches.
  Decision on_call(FsOp op, const std::string& path, const std::string& path2 = {});
  // Counts the call and throws the injected error when a fault hits it.
  void check(FsOp op, const std::string& path, const std::string& context, const std::string& path2 = {});
  [[noreturn]] static void fail(FsOp op, const std::string& context, int error);
  size_t write(WritableFile& target, const void* data, size_t length, uint64_t offset);
  size_t read(RandomAccessFile& target, void* data, size_t length, uint64_t offset);

  mutable std::mutex mutex_;
  std::vector<ArmedFault> faults_;
  uint64_t counts_[kNumFsOps] = {};
  uint64_t bytes_written_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t faults_triggered_ = 0;
  uint64_t space_limit_ = UINT64_MAX;
  uint64_t space_used_ = 0;
  std::vector<ReadRecord> reads_;
};

}  // namespace dcpp
