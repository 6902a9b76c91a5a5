// The POSIX file objects behind PosixFileSystem, for the io layer's own
// wrappers that need the descriptor (CrashFileSystem tracks files by inode).
//
// Each object owns its descriptor and closes it at destruction (silently) or
// at close() (reporting). read/write are positional, so several threads may
// use one object at once.
#pragma once

#include <string>
#include <utility>

#include "dcpp/io.h"

namespace dcpp::posix {

// ENOENT becomes kNotFound (a missing checkpoint or file is something callers
// react to); any other errno is kIo. `what` names the call, path and range.
[[noreturn]] void throw_sys(const std::string& what, int err);

std::string quoted(const std::string& path);

// Opens `path` with `flags` (O_CLOEXEC added), first with O_DIRECT when
// `try_direct`, falling back without it when the file system refuses
// (EINVAL). Sets `direct` to what was used. Throws on failure.
int open_file(const std::string& path, int flags, bool try_direct, bool& direct);

// The open(2) flags for open_write with `options` (O_WRONLY and the rest).
int write_flags(const OpenWriteOptions& options);

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, bool direct) : RandomAccessFile(std::move(path), direct), fd_(fd) {}
  ~PosixRandomAccessFile() override;

  size_t read(void* data, size_t length, uint64_t offset) override;
  uint64_t size() override;
  int fd() const { return fd_; }

 private:
  int fd_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, bool direct) : WritableFile(std::move(path), direct), fd_(fd) {}
  ~PosixWritableFile() override;

  size_t write(const void* data, size_t length, uint64_t offset) override;
  void sync() override;
  void truncate(uint64_t length) override;
  void close() override;
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace dcpp::posix
