// Support for the fuzz targets: an in-memory, read-only FileSystem, so that
// the real readers (which take a FileSystem) parse fuzzer bytes without
// touching a disk, and the libFuzzer entry point declaration.
//
// MemoryFileSystem holds whole files by absolute path; directories are
// implied by the files under them. Every write-side call throws
// Error(kUnsupported). Not thread-safe (one fuzz input at a time).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace dcpp::fuzz {

class MemoryFileSystem final : public FileSystem {
 public:
  void add(const std::string& path, const uint8_t* data, size_t size) {
    files_[path].assign(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  }

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& = {}) override {
    auto it = files_.find(path);
    if (it == files_.end()) throw Error(ErrorCode::kNotFound, "open '" + path + "': no such file");
    return std::make_unique<MemoryFile>(path, it->second);
  }
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& = {}) override {
    read_only("open for writing", path);
  }
  void rename(const std::string& a, const std::string&) override { read_only("rename", a); }
  bool rename_exchange(const std::string& a, const std::string&) override { read_only("rename_exchange", a); }
  bool mkdir(const std::string& p) override { read_only("mkdir", p); }
  bool remove(const std::string& p) override { read_only("remove", p); }
  void remove_all(const std::string& p) override { read_only("remove_all", p); }
  std::vector<std::string> list_dir(const std::string& path) override {
    const std::string prefix = path + "/";
    std::vector<std::string> names;
    for (const auto& [name, bytes] : files_) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      std::string child = name.substr(prefix.size());
      child = child.substr(0, child.find('/'));
      if (names.empty() || names.back() != child) names.push_back(child);
    }
    if (names.empty()) throw Error(ErrorCode::kNotFound, "opendir '" + path + "': no such directory");
    return names;
  }
  FileType file_type(const std::string& path) override {
    if (files_.count(path)) return FileType::kRegular;
    const std::string prefix = path + "/";
    auto it = files_.lower_bound(prefix);
    if (it != files_.end() && it->first.compare(0, prefix.size(), prefix) == 0) return FileType::kDirectory;
    return FileType::kNone;
  }
  uint64_t file_size(const std::string& path) override {
    auto it = files_.find(path);
    if (it == files_.end()) throw Error(ErrorCode::kNotFound, "stat '" + path + "': no such file");
    return it->second.size();
  }
  void fsync_dir(const std::string& p) override { read_only("fsync_dir", p); }
  uint64_t free_space(const std::string&) override { return 0; }

 private:
  [[noreturn]] static void read_only(const char* what, const std::string& path) {
    throw Error(ErrorCode::kUnsupported, std::string(what) + " '" + path + "': the fuzz file system is read-only");
  }
  // Refers to the file system's bytes: destroyed before it, as the seam requires.
  class MemoryFile final : public RandomAccessFile {
   public:
    MemoryFile(const std::string& path, const std::vector<std::byte>& bytes)
        : RandomAccessFile(path, false), bytes_(bytes) {}
    size_t read(void* data, size_t length, uint64_t offset) override {
      if (offset >= bytes_.size()) return 0;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(length, bytes_.size() - offset));
      std::memcpy(data, bytes_.data() + offset, n);
      return n;
    }
    uint64_t size() override { return bytes_.size(); }

   private:
    const std::vector<std::byte>& bytes_;
  };

  std::map<std::string, std::vector<std::byte>> files_;
};

// Runs `fn`; a dcpp::Error is the expected answer to bad input. Anything
// else escapes to libFuzzer as a finding (a crash report with the input).
template <typename Fn>
bool parses(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace dcpp::fuzz
