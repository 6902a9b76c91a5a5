// The file-system seam of dcpp, and the aligned buffers that go through it.
//
// Every byte dcpp puts on or takes off a disk goes through a FileSystem, an
// abstract class injected through the storage options (a
// shared_ptr<FileSystem>, PosixFileSystem by default). The seam exists so
// that tests can fail one exact call (the third pwrite, an fsync, a rename)
// with a chosen errno, cut a write short, run out of space, or count how many
// bytes a load read (FaultInjectingFileSystem), and so that every system call
// converts its errno where it happens, with the path, offset and length
// involved, into a dcpp::Error (kNotFound for ENOENT, kIo otherwise).
//
// Ownership: a FileHandle is a plain value naming an open descriptor; whoever
// opened it closes it (ScopedFile does that at scope exit). AlignedBuffer owns
// its memory. Thread-safety: PosixFileSystem is stateless and may be used by
// any number of threads; pread/pwrite on one handle from several threads are
// safe (positional I/O). FaultInjectingFileSystem serialises its bookkeeping
// with a mutex, so it is as thread-safe as the file system it wraps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace dcpp {

// Alignment for direct I/O and for every item's start offset in a data file.
inline constexpr size_t kIoAlignment = 4096;

inline constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

struct OpenFlags {
  bool read = true;
  bool write = false;
  bool create = false;     // O_CREAT (mode 0644)
  bool truncate = false;   // O_TRUNC
  bool exclusive = false;  // O_EXCL
  // Try O_DIRECT; when the file system refuses it (tmpfs answers EINVAL) the
  // file is opened without it and FileHandle::direct says so.
  bool try_direct = false;

  static OpenFlags read_only() { return {}; }
  // Create or truncate for writing (the data and metadata files of a save).
  static OpenFlags create_write() { return {.read = false, .write = true, .create = true, .truncate = true}; }
};

struct FileHandle {
  int fd = -1;
  bool direct = false;  // opened with O_DIRECT: buffers, offsets, lengths must be kIoAlignment-aligned
  std::string path;     // for error messages
  bool valid() const { return fd >= 0; }
};

enum class FileType { kNone, kRegular, kDirectory, kOther };

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual FileHandle open(const std::string& path, const OpenFlags& flags) = 0;
  // One positional write/read; may transfer fewer bytes than asked (as POSIX
  // may). pread returns 0 at end of file. Use write_all / read_full below.
  virtual size_t pwrite(const FileHandle& file, const void* data, size_t length, uint64_t offset) = 0;
  virtual size_t pread(const FileHandle& file, void* data, size_t length, uint64_t offset) = 0;
  virtual void fsync(const FileHandle& file) = 0;
  virtual void fdatasync(const FileHandle& file) = 0;
  virtual void truncate(const FileHandle& file, uint64_t length) = 0;
  // Closes and invalidates the handle; a no-op on an invalid one.
  virtual void close(FileHandle& file) = 0;

  virtual void rename(const std::string& from, const std::string& to) = 0;
  // Atomically swaps two existing paths (renameat2 RENAME_EXCHANGE). Returns
  // false, touching nothing, when the kernel or file system does not support
  // the exchange (EINVAL, ENOSYS, EOPNOTSUPP); throws on any other failure.
  virtual bool rename_exchange(const std::string& a, const std::string& b) = 0;
  // Creates one directory; returns false if it already exists as a directory.
  virtual bool mkdir(const std::string& path) = 0;
  // Removes a file or an empty directory; returns false if it did not exist.
  virtual bool remove(const std::string& path) = 0;
  // Removes a tree (files first, then directories); a missing path is not an error.
  virtual void remove_all(const std::string& path) = 0;
  // Names in a directory, without "." and "..", sorted.
  virtual std::vector<std::string> list_dir(const std::string& path) = 0;
  // Does not follow a final symlink (a symlink is kOther).
  virtual FileType file_type(const std::string& path) = 0;
  virtual uint64_t file_size(const std::string& path) = 0;
  // Makes a directory's entries (creations, renames) durable.
  virtual void fsync_dir(const std::string& path) = 0;
  // Bytes available to an unprivileged user on the file system holding path (statvfs).
  virtual uint64_t free_space(const std::string& path) = 0;

  // ---- helpers built on the primitives (not virtual: faults hit the primitives) ----
  // Loops over short writes; a write that makes no progress is Error(kIo).
  void write_all(const FileHandle& file, const void* data, size_t length, uint64_t offset);
  // Loops over short reads; returns the bytes read, less than `length` only at end of file.
  size_t read_full(const FileHandle& file, void* data, size_t length, uint64_t offset);
  bool exists(const std::string& path) { return file_type(path) != FileType::kNone; }
  // mkdir -p.
  void create_directories(const std::string& path);
};

using FileSystemPtr = std::shared_ptr<FileSystem>;

// The real thing: POSIX calls, errno converted at each call with context.
class PosixFileSystem final : public FileSystem {
 public:
  FileHandle open(const std::string& path, const OpenFlags& flags) override;
  size_t pwrite(const FileHandle& file, const void* data, size_t length, uint64_t offset) override;
  size_t pread(const FileHandle& file, void* data, size_t length, uint64_t offset) override;
  void fsync(const FileHandle& file) override;
  void fdatasync(const FileHandle& file) override;
  void truncate(const FileHandle& file, uint64_t length) override;
  void close(FileHandle& file) override;
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
};

// The process-wide default (a shared PosixFileSystem).
FileSystemPtr default_file_system();

// Closes a handle at scope exit (errors on that close are swallowed: the
// success path closes explicitly to see them).
class ScopedFile {
 public:
  ScopedFile(FileSystem& fs, FileHandle handle) : fs_(&fs), handle_(std::move(handle)) {}
  ~ScopedFile();
  ScopedFile(const ScopedFile&) = delete;
  ScopedFile& operator=(const ScopedFile&) = delete;
  const FileHandle& get() const { return handle_; }
  void close() { fs_->close(handle_); }

 private:
  FileSystem* fs_;
  FileHandle handle_;
};

// Which primitive a fault or a counter refers to.
enum class FsOp {
  kOpen, kPwrite, kPread, kFsync, kFdatasync, kTruncate, kClose, kRename, kRenameExchange,
  kMkdir, kRemove, kRemoveAll, kListDir, kFileType, kFileSize, kFsyncDir, kFreeSpace,
};
inline constexpr int kNumFsOps = 17;
std::string_view fs_op_name(FsOp op);

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

// One pread as the wrapped file system saw it (for "read only the touched blocks" tests).
struct ReadRecord {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Wraps a file system; forwards every call after applying the faults. Calls
// are counted per op (all calls, matching a fault or not), so a test that
// counts the calls of a clean run can then fail exactly the k-th one.
class FaultInjectingFileSystem final : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystemPtr inner = default_file_system());

  void add_fault(Fault fault);
  void clear_faults();
  // Simulated ENOSPC: pwrites succeed until `bytes` have been written in
  // total (counting from now), the one crossing the limit is cut short, the
  // next fail with ENOSPC. UINT64_MAX (the default) is no limit.
  void set_space_limit(uint64_t bytes);

  uint64_t count(FsOp op) const;
  uint64_t bytes_written() const;
  uint64_t bytes_read() const;
  std::vector<ReadRecord> reads() const;
  uint64_t faults_triggered() const;
  void reset_counters();

  FileHandle open(const std::string& path, const OpenFlags& flags) override;
  size_t pwrite(const FileHandle& file, const void* data, size_t length, uint64_t offset) override;
  size_t pread(const FileHandle& file, void* data, size_t length, uint64_t offset) override;
  void fsync(const FileHandle& file) override;
  void fdatasync(const FileHandle& file) override;
  void truncate(const FileHandle& file, uint64_t length) override;
  void close(FileHandle& file) override;
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
  enum class Action { kNone, kFail, kShortWrite };
  struct Decision {
    Action action = Action::kNone;
    int error = 0;
  };
  struct ArmedFault {
    Fault fault;
    uint64_t matched = 0;
  };
  // Counts the call and decides its fate; `paths` are the paths it touches.
  Decision on_call(FsOp op, const std::string& path, const std::string& path2 = {});
  [[noreturn]] void fail(FsOp op, const std::string& context, int error);

  FileSystemPtr inner_;
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

// Owning, kIoAlignment-aligned, move-only bytes (O_DIRECT transfers, block reads).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Uninitialised unless `zero`. The allocation is rounded up to kIoAlignment.
  explicit AlignedBuffer(size_t size, bool zero = false);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace dcpp
