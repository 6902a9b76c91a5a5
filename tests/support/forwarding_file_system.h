// Test support: a FileSystem that forwards every primitive to an inner one.
// Test doubles derive from it and override only the calls they watch or
// change; the inner file system (POSIX by default) is shared, not owned alone.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dcpp/io.h"

namespace dcpp::testing {

class ForwardingFileSystem : public FileSystem {
 public:
  explicit ForwardingFileSystem(FileSystemPtr inner = default_file_system()) : inner_(std::move(inner)) {}

  FileHandle open(const std::string& p, const OpenFlags& f) override { return inner_->open(p, f); }
  size_t pwrite(const FileHandle& h, const void* d, size_t n, uint64_t o) override { return inner_->pwrite(h, d, n, o); }
  size_t pread(const FileHandle& h, void* d, size_t n, uint64_t o) override { return inner_->pread(h, d, n, o); }
  void fsync(const FileHandle& h) override { inner_->fsync(h); }
  void fdatasync(const FileHandle& h) override { inner_->fdatasync(h); }
  void truncate(const FileHandle& h, uint64_t n) override { inner_->truncate(h, n); }
  void close(FileHandle& h) override { inner_->close(h); }
  void rename(const std::string& a, const std::string& b) override { inner_->rename(a, b); }
  bool rename_exchange(const std::string& a, const std::string& b) override { return inner_->rename_exchange(a, b); }
  bool mkdir(const std::string& p) override { return inner_->mkdir(p); }
  bool remove(const std::string& p) override { return inner_->remove(p); }
  void remove_all(const std::string& p) override { inner_->remove_all(p); }
  std::vector<std::string> list_dir(const std::string& p) override { return inner_->list_dir(p); }
  FileType file_type(const std::string& p) override { return inner_->file_type(p); }
  uint64_t file_size(const std::string& p) override { return inner_->file_size(p); }
  void fsync_dir(const std::string& p) override { inner_->fsync_dir(p); }
  uint64_t free_space(const std::string& p) override { return inner_->free_space(p); }

 protected:
  FileSystem& inner() { return *inner_; }

 private:
  FileSystemPtr inner_;
};

}  // namespace dcpp::testing
