#include <cerrno>
#include <cstring>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp {

std::string_view fs_op_name(FsOp op) {
  switch (op) {
    case FsOp::kOpen: return "open";
    case FsOp::kPwrite: return "pwrite";
    case FsOp::kPread: return "pread";
    case FsOp::kFsync: return "fsync";
    case FsOp::kFdatasync: return "fdatasync";
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

FaultInjectingFileSystem::FaultInjectingFileSystem(FileSystemPtr inner) : inner_(std::move(inner)) {}

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

void FaultInjectingFileSystem::fail(FsOp op, const std::string& context, int error) {
  std::string what = "injected fault: " + std::string(fs_op_name(op)) + " " + context;
  if (error == ENOENT) {
    throw Error(ErrorCode::kNotFound, what + ": " + std::strerror(error) + " (errno " + std::to_string(error) + ")");
  }
  throw_errno(what, error);
}

namespace {
std::string q(const std::string& p) { return "'" + p + "'"; }
}  // namespace

FileHandle FaultInjectingFileSystem::open(const std::string& path, const OpenFlags& flags) {
  auto d = on_call(FsOp::kOpen, path);
  if (d.action != Action::kNone) fail(FsOp::kOpen, q(path), d.error);
  return inner_->open(path, flags);
}

size_t FaultInjectingFileSystem::pwrite(const FileHandle& file, const void* data, size_t length, uint64_t offset) {
  auto d = on_call(FsOp::kPwrite, file.path);
  std::string context = q(file.path) + " at offset " + std::to_string(offset) + " length " + std::to_string(length);
  if (d.action == Action::kFail) fail(FsOp::kPwrite, context, d.error);
  size_t ask = length;
  if (d.action == Action::kShortWrite && length > 1) ask = length / 2;
  {
    std::lock_guard lock(mutex_);
    if (space_limit_ != UINT64_MAX) {
      uint64_t left = space_limit_ > space_used_ ? space_limit_ - space_used_ : 0;
      // A direct-I/O write cannot end inside a page: a real disk writes the
      // whole pages that fit, or refuses (the kernel would reject an
      // unaligned length with EINVAL, which is no full disk).
      if (file.direct) left = left / kIoAlignment * kIoAlignment;
      if (left == 0) {
        ++faults_triggered_;
        // Unlock happens at scope exit; fail() only builds the exception.
        std::string ctx = context + " (simulated full disk)";
        throw Error(ErrorCode::kIo, "injected fault: pwrite " + ctx + ": " + std::strerror(ENOSPC) +
                                        " (errno " + std::to_string(ENOSPC) + ")");
      }
      if (ask > left) ask = static_cast<size_t>(left);
    }
  }
  size_t n = inner_->pwrite(file, data, ask, offset);
  std::lock_guard lock(mutex_);
  bytes_written_ += n;
  space_used_ += n;
  return n;
}

size_t FaultInjectingFileSystem::pread(const FileHandle& file, void* data, size_t length, uint64_t offset) {
  auto d = on_call(FsOp::kPread, file.path);
  if (d.action != Action::kNone) {
    fail(FsOp::kPread, q(file.path) + " at offset " + std::to_string(offset) + " length " + std::to_string(length),
         d.error);
  }
  size_t n = inner_->pread(file, data, length, offset);
  std::lock_guard lock(mutex_);
  bytes_read_ += n;
  reads_.push_back({file.path, offset, length});
  return n;
}

void FaultInjectingFileSystem::fsync(const FileHandle& file) {
  auto d = on_call(FsOp::kFsync, file.path);
  if (d.action != Action::kNone) fail(FsOp::kFsync, q(file.path), d.error);
  inner_->fsync(file);
}

void FaultInjectingFileSystem::fdatasync(const FileHandle& file) {
  auto d = on_call(FsOp::kFdatasync, file.path);
  if (d.action != Action::kNone) fail(FsOp::kFdatasync, q(file.path), d.error);
  inner_->fdatasync(file);
}

void FaultInjectingFileSystem::truncate(const FileHandle& file, uint64_t length) {
  auto d = on_call(FsOp::kTruncate, file.path);
  if (d.action != Action::kNone) fail(FsOp::kTruncate, q(file.path), d.error);
  inner_->truncate(file, length);
}

void FaultInjectingFileSystem::close(FileHandle& file) {
  if (!file.valid()) return;
  auto d = on_call(FsOp::kClose, file.path);
  if (d.action != Action::kNone) {
    // Like Linux: the descriptor is gone even though close reported an error.
    inner_->close(file);
    fail(FsOp::kClose, q(file.path), d.error);
  }
  inner_->close(file);
}

void FaultInjectingFileSystem::rename(const std::string& from, const std::string& to) {
  auto d = on_call(FsOp::kRename, from, to);
  if (d.action != Action::kNone) fail(FsOp::kRename, q(from) + " to " + q(to), d.error);
  inner_->rename(from, to);
}

bool FaultInjectingFileSystem::rename_exchange(const std::string& a, const std::string& b) {
  auto d = on_call(FsOp::kRenameExchange, a, b);
  if (d.action != Action::kNone) {
    // EINVAL is how an unsupporting file system answers: report "unsupported"
    // so tests can exercise the fallback path.
    if (d.error == EINVAL) return false;
    fail(FsOp::kRenameExchange, q(a) + " and " + q(b), d.error);
  }
  return inner_->rename_exchange(a, b);
}

bool FaultInjectingFileSystem::mkdir(const std::string& path) {
  auto d = on_call(FsOp::kMkdir, path);
  if (d.action != Action::kNone) fail(FsOp::kMkdir, q(path), d.error);
  return inner_->mkdir(path);
}

bool FaultInjectingFileSystem::remove(const std::string& path) {
  auto d = on_call(FsOp::kRemove, path);
  if (d.action != Action::kNone) fail(FsOp::kRemove, q(path), d.error);
  return inner_->remove(path);
}

void FaultInjectingFileSystem::remove_all(const std::string& path) {
  auto d = on_call(FsOp::kRemoveAll, path);
  if (d.action != Action::kNone) fail(FsOp::kRemoveAll, q(path), d.error);
  inner_->remove_all(path);
}

std::vector<std::string> FaultInjectingFileSystem::list_dir(const std::string& path) {
  auto d = on_call(FsOp::kListDir, path);
  if (d.action != Action::kNone) fail(FsOp::kListDir, q(path), d.error);
  return inner_->list_dir(path);
}

FileType FaultInjectingFileSystem::file_type(const std::string& path) {
  auto d = on_call(FsOp::kFileType, path);
  if (d.action != Action::kNone) fail(FsOp::kFileType, q(path), d.error);
  return inner_->file_type(path);
}

uint64_t FaultInjectingFileSystem::file_size(const std::string& path) {
  auto d = on_call(FsOp::kFileSize, path);
  if (d.action != Action::kNone) fail(FsOp::kFileSize, q(path), d.error);
  return inner_->file_size(path);
}

void FaultInjectingFileSystem::fsync_dir(const std::string& path) {
  auto d = on_call(FsOp::kFsyncDir, path);
  if (d.action != Action::kNone) fail(FsOp::kFsyncDir, q(path), d.error);
  inner_->fsync_dir(path);
}

uint64_t FaultInjectingFileSystem::free_space(const std::string& path) {
  auto d = on_call(FsOp::kFreeSpace, path);
  if (d.action != Action::kNone) fail(FsOp::kFreeSpace, q(path), d.error);
  return inner_->free_space(path);
}

}  // namespace dcpp
