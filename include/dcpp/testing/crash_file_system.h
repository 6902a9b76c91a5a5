// CrashFileSystem: a POSIX file system for tests that can simulate a machine
// crash at any step, losing what was not yet durable.
//
// It tracks what a real disk would keep after a power loss, in the manner of
// leveldb's fault-injection environment: a file's bytes are durable up to
// the length it had at its last WritableFile::sync(); a directory entry change
// (a file created, a directory made, a rename, an exchange, a removal) is
// durable once every directory it touched has been fsynced (fsync_dir)
// after it. crash_at_step(k) makes the k-th mutating call (open_write, and
// write, sync and truncate on a file it opened; rename, rename_exchange,
// mkdir, remove, fsync_dir; counted from the arming, over all threads)
// and every later call of any kind fail with Error(kIo) "simulated machine
// crash" without touching the disk: the machine is gone, so the failure
// handling of the code under test cannot repair anything either.
// simulate_crash() then rewrites the tree into what the disk would show after
// a reboot: every tracked file cut to its last synced length, every
// non-durable entry change undone (newest first). Directories are tracked by
// inode through held descriptors, so renames of directories after the fact
// do not confuse the bookkeeping. Removals never free anything: a removed
// entry is parked in a trash directory under `scratch_dir` (which must be on
// the same file system as the paths used) so that a crash can bring it back.
// Limits of the model (harsher than most real file systems, never milder):
// a file truncated by O_TRUNC or truncate() after its last sync comes back
// with zeros, not its old bytes; a rename replacing an existing directory is
// not supported (Error(kInternal)).
//
// Ownership: the object owns the descriptors it holds for tracking (closed at
// simulate_crash, make_all_durable and destruction) and the trash directory
// (removed at destruction). The files it opens refer to it and must be
// destroyed before it. Thread-safety: every method may be called from
// several threads; entry changes are serialised by one mutex, data writes
// are not. simulate_crash() and make_all_durable() must not run concurrently
// with other calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dcpp/io.h"
#include "dcpp/testing/fs_op.h"

namespace dcpp {

class CrashFileSystem final : public FileSystem {
 public:
  explicit CrashFileSystem(const std::string& scratch_dir);
  ~CrashFileSystem() override;
  CrashFileSystem(const CrashFileSystem&) = delete;
  CrashFileSystem& operator=(const CrashFileSystem&) = delete;

  // The `step`-th mutating call from now (1-based) is refused, and the
  // machine counts as crashed from then on. 0 disarms (and restarts the count).
  void crash_at_step(uint64_t step);
  // Mutating calls since the last crash_at_step / make_all_durable.
  uint64_t steps() const { return steps_.load(); }
  bool crashed() const { return crashed_.load(); }
  // "#<n> <op> <path>" for each mutating call counted (the refused one last,
  // marked "(crash)"), for reports of where a crash landed.
  std::vector<std::string> step_log() const;
  // Rolls the tree back to its durable state (see above), then works normally
  // again with everything that survived counting as durable. Returns the
  // number of entry changes undone and of files cut short. `keep_pending`:
  // the first that many non-durable entry changes survive anyway, as on a
  // journaling file system that committed part of its journal in order
  // before the power went (pending_changes() says how many there are).
  std::pair<size_t, size_t> simulate_crash(size_t keep_pending = 0);
  // Entry changes not yet durable.
  size_t pending_changes() const;
  // Everything done so far counts as durable (the set-up of a test).
  void make_all_durable();
  // Whether rename_exchange is offered (false: it answers "unsupported",
  // as a file system without RENAME_EXCHANGE does).
  void set_rename_exchange_supported(bool supported) { exchange_supported_ = supported; }

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
  struct Dir;      // a directory held open by inode
  struct Pending;  // one entry change not yet durable
  struct Tracked;  // a file opened for writing
  class ReadFile;
  class WriteFile;
  using DirPtr = std::shared_ptr<Dir>;

  // Counts a mutating call; throws the crash error when it is the armed one.
  void step(FsOp op, const std::string& path);
  // Throws when the machine has crashed (for non-mutating calls).
  void check_alive(FsOp op, const std::string& path) const;
  DirPtr dir_of(const std::string& path);  // the parent directory of `path`, held
  DirPtr dir_at(const std::string& dir_path);
  void track_file(int fd, bool truncated_or_new);
  void sync_file(int fd, const std::string& path);
  void release_all();

  std::string trash_;
  int trash_fd_ = -1;
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> crash_step_{0};
  std::atomic<bool> crashed_{false};
  std::atomic<bool> exchange_supported_{true};
  mutable std::mutex mutex_;
  std::vector<std::string> log_;
  std::map<std::pair<uint64_t, uint64_t>, DirPtr> dirs_;  // (dev, ino) → held directory
  std::map<std::pair<uint64_t, uint64_t>, std::unique_ptr<Tracked>> files_;
  std::vector<std::unique_ptr<Pending>> pending_;
  uint64_t trash_counter_ = 0;
};

}  // namespace dcpp
