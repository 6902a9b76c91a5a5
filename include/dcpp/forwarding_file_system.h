// ForwardingFileSystem: a FileSystem that hands every call to a target file
// system, in the manner of leveldb's EnvWrapper, and the file objects that do
// the same for one file.
//
// A wrapper (a counter, a logger, a fault injector, a test double) derives
// from it and overrides only the calls it watches or changes; every other call
// reaches the target unchanged. open_read/open_write return the target's own
// file objects: a wrapper that watches reads or writes overrides them and
// wraps what the target opened in a ForwardingRandomAccessFile or
// ForwardingWritableFile subclass, which again overrides only what it needs.
//
// Ownership: the target file system is shared (POSIX by default); a
// forwarding file owns the file it wraps, and closes it with itself.
// Thread-safety: that of the target; the forwarding adds no state.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dcpp/io.h"

namespace dcpp {

class ForwardingFileSystem : public FileSystem {
 public:
  explicit ForwardingFileSystem(FileSystemPtr target = default_file_system()) : target_(std::move(target)) {}

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) override {
    return target_->open_read(path, options);
  }
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) override {
    return target_->open_write(path, options);
  }
  void rename(const std::string& from, const std::string& to) override { target_->rename(from, to); }
  bool rename_exchange(const std::string& a, const std::string& b) override { return target_->rename_exchange(a, b); }
  bool mkdir(const std::string& path) override { return target_->mkdir(path); }
  bool remove(const std::string& path) override { return target_->remove(path); }
  void remove_all(const std::string& path) override { target_->remove_all(path); }
  std::vector<std::string> list_dir(const std::string& path) override { return target_->list_dir(path); }
  FileType file_type(const std::string& path) override { return target_->file_type(path); }
  uint64_t file_size(const std::string& path) override { return target_->file_size(path); }
  void fsync_dir(const std::string& path) override { target_->fsync_dir(path); }
  uint64_t free_space(const std::string& path) override { return target_->free_space(path); }
  bool atomic_rename() const override { return target_->atomic_rename(); }

  FileSystem& target() const { return *target_; }
  const FileSystemPtr& target_ptr() const { return target_; }

 private:
  FileSystemPtr target_;
};

class ForwardingRandomAccessFile : public RandomAccessFile {
 public:
  explicit ForwardingRandomAccessFile(std::unique_ptr<RandomAccessFile> target)
      : RandomAccessFile(target->path(), target->direct()), target_(std::move(target)) {}

  size_t read(void* data, size_t length, uint64_t offset) override { return target_->read(data, length, offset); }
  uint64_t size() override { return target_->size(); }

  RandomAccessFile& target() const { return *target_; }

 private:
  std::unique_ptr<RandomAccessFile> target_;
};

class ForwardingWritableFile : public WritableFile {
 public:
  explicit ForwardingWritableFile(std::unique_ptr<WritableFile> target)
      : WritableFile(target->path(), target->direct()), target_(std::move(target)) {}

  size_t write(const void* data, size_t length, uint64_t offset) override {
    return target_->write(data, length, offset);
  }
  void sync() override { target_->sync(); }
  void truncate(uint64_t length) override { target_->truncate(length); }
  void close() override { target_->close(); }

  WritableFile& target() const { return *target_; }

 private:
  std::unique_ptr<WritableFile> target_;
};

}  // namespace dcpp
