#include "dcpp/testing/fault_injecting_file_system.h"

#include <cerrno>
#include <cstring>

#include "dcpp/error.h"

namespace dcpp {

std::string_view fs_op_name(FsOp op) {
  switch (op) {
    case FsOp::kOpen: return "open";
    case FsOp::kPwrite: return "pwrite";
    case FsOp::kPread: return "pread";
    case FsOp::kSync: return "sync";
    case FsOp::kTruncate: return "truncate";
    case FsOp::kClose: return "close";
    case FsOp::kRename: return "rename";
    case FsOp::kRenameExchange: return "rename_exchange";
    case FsOp::kMkdir: return "mkdir";
    case FsOp::kRemove: return "remove";
    case FsOp::kRemoveAll: return "remove_all";
    case FsOp::kListDir: return "list_dir";
    case FsOp::kFileType: return "file_type";
    case FsOp::kFileSize: return "file_size";
    case FsOp::kFsyncDir: return "fsync_dir";
    case FsOp::kFreeSpace: return "free_space";
  }
  return "unknown";
}

namespace {

std::string q(const std::string& p) { return "'" + p + "'"; }

std::string range(const std::string& path, size_t length, uint64_t offset) {
  return q(path) + " at offset " + std::to_string(offset) + " length " + std::to_string(length);
}

}  // namespace

// The file objects send each call through the owner's bookkeeping, then on
// to the target's file.
class FaultInjectingFileSystem::ReadFile final : public ForwardingRandomAccessFile {
 public:
  ReadFile(FaultInjectingFileSystem& owner, std::unique_ptr<RandomAccessFile> target)
      : ForwardingRandomAccessFile(std::move(target)), owner_(owner) {}
  size_t read(void* data, size_t length, uint64_t offset) override {
    return owner_.read(target(), data, length, offset);
  }

 private:
  FaultInjectingFileSystem& owner_;
};

class FaultInjectingFileSystem::WriteFile final : public ForwardingWritableFile {
 public:
  WriteFile(FaultInjectingFileSystem& owner, std::unique_ptr<WritableFile> target)
      : ForwardingWritableFile(std::move(target)), owner_(owner) {}
  size_t write(const void* data, size_t length, uint64_t offset) override {
    return owner_.write(target(), data, length, offset);
  }
  void sync() override {
    owner_.check(FsOp::kSync, path(), q(path()));
    target().sync();
  }
  void truncate(uint64_t length) override {
    owner_.check(FsOp::kTruncate, path(), q(path()));
    target().truncate(length);
  }
  void close() override {
    if (closed_) return;
    closed_ = true;
    auto d = owner_.on_call(FsOp::kClose, path());
    // Like Linux: the file is released even though close reports an error.
    target().close();
    if (d.action != Action::kNone) fail(FsOp::kClose, q(path()), d.error);
  }

 private:
  FaultInjectingFileSystem& owner_;
  bool closed_ = false;
};

FaultInjectingFileSystem::FaultInjectingFileSystem(FileSystemPtr target) : ForwardingFileSystem(std::move(target)) {}

void FaultInjectingFileSystem::add_fault(Fault fault) {
  std::lock_guard lock(mutex_);
  faults_.push_back({std::move(fault), 0});
}

void FaultInjectingFileSystem::clear_faults() {
  std::lock_guard lock(mutex_);
  faults_.clear();
  space_limit_ = UINT64_MAX;
}

void FaultInjectingFileSystem::set_space_limit(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  space_limit_ = bytes;
  space_used_ = 0;
}

uint64_t FaultInjectingFileSystem::count(FsOp op) const {
  std::lock_guard lock(mutex_);
  return counts_[static_cast<int>(op)];
}

uint64_t FaultInjectingFileSystem::bytes_written() const {
  std::lock_guard lock(mutex_);
  return bytes_written_;
}

uint64_t FaultInjectingFileSystem::bytes_read() const {
  std::lock_guard lock(mutex_);
  return bytes_read_;
}

std::vector<ReadRecord> FaultInjectingFileSystem::reads() const {
  std::lock_guard lock(mutex_);
  return reads_;
}

uint64_t FaultInjectingFileSystem::faults_triggered() const {
  std::lock_guard lock(mutex_);
  return faults_triggered_;
}

void FaultInjectingFileSystem::reset_counters() {
  std::lock_guard lock(mutex_);
  for (auto& c : counts_) c = 0;
  bytes_written_ = 0;
  bytes_read_ = 0;
  faults_triggered_ = 0;
  reads_.clear();
}

FaultInjectingFileSystem::Decision FaultInjectingFileSystem::on_call(FsOp op, const std::string& path,
                                                                     const std::string& path2) {
  std::lock_guard lock(mutex_);
  ++counts_[static_cast<int>(op)];
  Decision decision;
  for (auto& armed : faults_) {
    const Fault& f = armed.fault;
    if (f.op != op) continue;
    if (!f.path_contains.empty() && path.find(f.path_contains) == std::string::npos &&
        path2.find(f.path_contains) == std::string::npos) {
      continue;
    }
    uint64_t n = ++armed.matched;
    bool hit = f.repeat ? n >= f.nth : n == f.nth;
    if (hit && decision.action == Action::kNone) {
      ++faults_triggered_;
      decision.action = (f.short_write && op == FsOp::kPwrite) ? Action::kShortWrite : Action::kFail;
      decision.error = f.error;
    }
  }
  return decision;
}

void FaultInjectingFileSystem::check(FsOp op, const std::string& path, const std::string& context,
                                     const std::string& path2) {
  auto d = on_call(op, path, path2);
  if (d.action != Action::kNone) fail(op, context, d.error);
}

void FaultInjectingFileSystem::fail(FsOp op, const std::string& context, int error) {
  std::string what = "injected fault: " + std::string(fs_op_name(op)) + " " + context;
  if (error == ENOENT) {
    throw Error(ErrorCode::kNotFound, what + ": " + std::strerror(error) + " (errno " + std::to_string(error) + ")");
  }
  throw_errno(what, error);
}

size_t FaultInjectingFileSystem::write(WritableFile& target, const void* data, size_t length, uint64_t offset) {
  auto d = on_call(FsOp::kPwrite, target.path());
  if (d.action == Action::kFail) fail(FsOp::kPwrite, range(target.path(), length, offset), d.error);
  size_t ask = length;
  if (d.action == Action::kShortWrite && length > 1) ask = length / 2;
  {
    std::lock_guard lock(mutex_);
    if (space_limit_ != UINT64_MAX) {
      uint64_t left = space_limit_ > space_used_ ? space_limit_ - space_used_ : 0;
      // A direct-I/O write cannot end inside a page: a real disk writes the
      // whole pages that fit, or refuses (the kernel would reject an
      // unaligned length with EINVAL, which is no full disk).
      if (target.direct()) left = left / kIoAlignment * kIoAlignment;
      if (left == 0) {
        ++faults_triggered_;
        throw Error(ErrorCode::kIo, "injected fault: pwrite " + range(target.path(), length, offset) +
                                        " (simulated full disk): " + std::strerror(ENOSPC) + " (errno " +
                                        std::to_string(ENOSPC) + ")");
      }
      if (ask > left) ask = static_cast<size_t>(left);
    }
  }
  size_t n = target.write(data, ask, offset);
  std::lock_guard lock(mutex_);
  bytes_written_ += n;
  space_used_ += n;
  return n;
}

size_t FaultInjectingFileSystem::read(RandomAccessFile& target, void* data, size_t length, uint64_t offset) {
  check(FsOp::kPread, target.path(), range(target.path(), length, offset));
  size_t n = target.read(data, length, offset);
  std::lock_guard lock(mutex_);
  bytes_read_ += n;
  reads_.push_back({target.path(), offset, length});
  return n;
}

std::unique_ptr<RandomAccessFile> FaultInjectingFileSystem::open_read(const std::string& path,
                                                                      const OpenReadOptions& options) {
  check(FsOp::kOpen, path, q(path));
  return std::make_unique<ReadFile>(*this, ForwardingFileSystem::open_read(path, options));
}

std::unique_ptr<WritableFile> FaultInjectingFileSystem::open_write(const std::string& path,
                                                                   const OpenWriteOptions& options) {
  check(FsOp::kOpen, path, q(path));
  return std::make_unique<WriteFile>(*this, ForwardingFileSystem::open_write(path, options));
}

void FaultInjectingFileSystem::rename(const std::string& from, const std::string& to) {
  check(FsOp::kRename, from, q(from) + " to " + q(to), to);
  ForwardingFileSystem::rename(from, to);
}

bool FaultInjectingFileSystem::rename_exchange(const std::string& a, const std::string& b) {
  auto d = on_call(FsOp::kRenameExchange, a, b);
  if (d.action != Action::kNone) {
    // EINVAL is how an unsupporting file system answers: report "unsupported"
    // so tests can exercise the fallback path.
    if (d.error == EINVAL) return false;
    fail(FsOp::kRenameExchange, q(a) + " and " + q(b), d.error);
  }
  return ForwardingFileSystem::rename_exchange(a, b);
}

bool FaultInjectingFileSystem::mkdir(const std::string& path) {
  check(FsOp::kMkdir, path, q(path));
  return ForwardingFileSystem::mkdir(path);
}

bool FaultInjectingFileSystem::remove(const std::string& path) {
  check(FsOp::kRemove, path, q(path));
  return ForwardingFileSystem::remove(path);
}

void FaultInjectingFileSystem::remove_all(const std::string& path) {
  check(FsOp::kRemoveAll, path, q(path));
  ForwardingFileSystem::remove_all(path);
}

std::vector<std::string> FaultInjectingFileSystem::list_dir(const std::string& path) {
  check(FsOp::kListDir, path, q(path));
  return ForwardingFileSystem::list_dir(path);
}

FileType FaultInjectingFileSystem::file_type(const std::string& path) {
  check(FsOp::kFileType, path, q(path));
  return ForwardingFileSystem::file_type(path);
}

uint64_t FaultInjectingFileSystem::file_size(const std::string& path) {
  check(FsOp::kFileSize, path, q(path));
  return ForwardingFileSystem::file_size(path);
}

void FaultInjectingFileSystem::fsync_dir(const std::string& path) {
  check(FsOp::kFsyncDir, path, q(path));
  ForwardingFileSystem::fsync_dir(path);
}

uint64_t FaultInjectingFileSystem::free_space(const std::string& path) {
  check(FsOp::kFreeSpace, path, q(path));
  return ForwardingFileSystem::free_space(path);
}

}  // namespace dcpp
