// The byte-store seam of dcpp, and the aligned buffers that go through it.
//
// Every byte dcpp puts on or takes off storage goes through a FileSystem, an
// abstract class injected through the storage options (a
// shared_ptr<FileSystem>, PosixFileSystem by default), in the manner of
// leveldb's Env: the file system opens file objects (RandomAccessFile for
// positional reads, WritableFile for positional writes) and performs the
// name-level operations (rename, mkdir, remove, list, sync a directory). No
// descriptor crosses the seam, so a backend that is not a POSIX file system
// (an object store) implements the same classes. Wrappers derive from
// ForwardingFileSystem (dcpp/forwarding_file_system.h) and override only what
// they change; the test doubles built that way (fault injection, crash
// simulation) live in dcpp/testing/. Every implementation converts its
// errors where the call happens, with the path, offset and length involved,
// into a dcpp::Error (kNotFound for a missing file, kIo otherwise).
//
// Ownership: open_read/open_write return a unique_ptr the caller owns. A
// WritableFile's close() reports errors; its destructor closes silently (the
// error path, where the first error is the one that matters). A file opened
// through a wrapping file system may refer to it: destroy files before the
// file system that opened them. AlignedBuffer owns its memory.
// Thread-safety: PosixFileSystem is stateless and may be used by any number
// of threads. One file object may serve reads (RandomAccessFile) or writes
// of disjoint ranges (WritableFile) from several threads at once; sync,
// truncate and close must not overlap other calls on the same file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dcpp {

// Alignment for direct I/O and for every item's start offset in a data file.
inline constexpr size_t kIoAlignment = 4096;

inline constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

struct OpenReadOptions {
  // Try O_DIRECT; when the file system refuses it (tmpfs answers EINVAL) the
  // file is opened without it and RandomAccessFile::direct() says so.
  bool try_direct = false;
};

struct OpenWriteOptions {
  bool try_direct = false;  // as for reads
  bool create = true;       // create a missing file (mode 0644)
  bool truncate = true;     // drop existing contents
  bool exclusive = false;   // fail if the file exists
};

// A file open for positional reads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;

  // One positional read; may return fewer bytes than asked (as POSIX pread
  // may) and returns 0 at end of file. Use read_full to fill a range.
  virtual size_t read(void* data, size_t length, uint64_t offset) = 0;
  // The file's current length in bytes.
  virtual uint64_t size() = 0;

  // Loops over short reads; returns the bytes read, less than `length` only
  // at end of file. Not virtual: faults hit read().
  size_t read_full(void* data, size_t length, uint64_t offset);

  const std::string& path() const { return path_; }
  // Opened for direct I/O: buffers, offsets and lengths must be kIoAlignment-aligned.
  bool direct() const { return direct_; }

 protected:
  RandomAccessFile(std::string path, bool direct) : path_(std::move(path)), direct_(direct) {}

 private:
  std::string path_;  // for error messages
  bool direct_;
};

// A file open for positional writes.
class WritableFile {
 public:
  // Implementations close a file still open, silently.
  virtual ~WritableFile() = default;
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;

  // One positional write; may write fewer bytes than asked (as POSIX pwrite
  // may). Use write_all to write a whole range.
  virtual size_t write(const void* data, size_t length, uint64_t offset) = 0;
  // Makes the written bytes and the file's length durable (fdatasync).
  virtual void sync() = 0;
  // Sets the file's length (cuts the padding of a last direct write).
  virtual void truncate(uint64_t length) = 0;
  // Releases the file and reports a failure to do so (a deferred write
  // error); a no-op when already closed. No other call may follow it.
  virtual void close() = 0;

  // Loops over short writes; a write that makes no progress is Error(kIo).
  // A direct file goes on from the last whole page of a short write. Not
  // virtual: faults hit write().
  void write_all(const void* data, size_t length, uint64_t offset);

  const std::string& path() const { return path_; }
  bool direct() const { return direct_; }

 protected:
  WritableFile(std::string path, bool direct) : path_(std::move(path)), direct_(direct) {}

 private:
  std::string path_;
  bool direct_;
};

enum class FileType { kNone, kRegular, kDirectory, kOther };

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) = 0;
  virtual std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) = 0;

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
  // Whether rename and rename_exchange are atomic name changes (a POSIX file
  // system). An object store answers false: it has no rename, only copies,
  // so the native writer names its objects per save and commits by writing
  // the metadata object last (docs/design.md, "Commit without rename").
  virtual bool atomic_rename() const { return true; }

  // ---- helpers built on the primitives (not virtual: faults hit the primitives) ----
  bool exists(const std::string& path) { return file_type(path) != FileType::kNone; }
  // mkdir -p.
  void create_directories(const std::string& path);
};

using FileSystemPtr = std::shared_ptr<FileSystem>;

// The real thing: POSIX calls, errno converted at each call with context.
class PosixFileSystem final : public FileSystem {
 public:
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
};

// The process-wide default (a shared PosixFileSystem).
FileSystemPtr default_file_system();

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
