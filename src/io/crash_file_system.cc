// CrashFileSystem (include/dcpp/testing/crash_file_system.h): POSIX calls
// plus the bookkeeping of what a disk would keep after a power loss.
#include "dcpp/testing/crash_file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "io/paths.h"
#include "io/posix_file.h"

namespace dcpp {
namespace {

using posix::throw_sys;

using Key = std::pair<uint64_t, uint64_t>;  // (st_dev, st_ino)

Key key_of(const struct stat& st) { return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}; }

std::string qp(const std::string& s) { return "'" + s + "'"; }

using paths::split_parent;

constexpr unsigned kRenameNoReplace = 1;  // RENAME_NOREPLACE
constexpr unsigned kRenameExchange = 2;   // RENAME_EXCHANGE

int renameat2_sys(int olddir, const std::string& oldname, int newdir, const std::string& newname, unsigned flags) {
#ifdef SYS_renameat2
  return static_cast<int>(::syscall(SYS_renameat2, olddir, oldname.c_str(), newdir, newname.c_str(), flags));
#else
  if (flags != 0) {
    errno = ENOSYS;
    return -1;
  }
  return ::renameat(olddir, oldname.c_str(), newdir, newname.c_str());
#endif
}

bool dir_is_empty(int dirfd, const std::string& name) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_sys("open directory " + qp(name), errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    throw_sys("fdopendir " + qp(name), err);
  }
  bool empty = true;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

}  // namespace

struct CrashFileSystem::Dir {
  int fd = -1;  // O_PATH descriptor: survives renames of the directory
  Key key;
  ~Dir() {
    if (fd >= 0) ::close(fd);
  }
};

struct CrashFileSystem::Tracked {
  int fd = -1;  // a duplicate of the writer's descriptor, to cut the file at a crash
  uint64_t synced = 0;
  ~Tracked() {
    if (fd >= 0) ::close(fd);
  }
};

struct CrashFileSystem::Pending {
  enum class Kind { kCreate, kMkdir, kRename, kExchange, kRemove } kind;
  DirPtr a;            // create/mkdir/remove: the entry's directory; rename: source; exchange: first
  std::string a_name;
  DirPtr b;            // rename: destination; exchange: second
  std::string b_name;
  Key inode{};         // create/mkdir: the new entry; rename: the moved entry
  std::string parked;  // remove: the trash name; rename: the displaced target's trash name (or empty)
  std::set<Key> unsynced;  // directories still to be fsynced before this change is durable
};

CrashFileSystem::CrashFileSystem(const std::string& scratch_dir) {
  std::string tmpl = scratch_dir + "/.crash-trash-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw_sys("mkdtemp " + qp(tmpl), errno);
  trash_ = tmpl;
  trash_fd_ = ::open(trash_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (trash_fd_ < 0) throw_sys("open " + qp(trash_), errno);
}

CrashFileSystem::~CrashFileSystem() {
  release_all();
  if (trash_fd_ >= 0) ::close(trash_fd_);
  std::error_code ec;
  std::filesystem::remove_all(trash_, ec);
}

void CrashFileSystem::crash_at_step(uint64_t step) {
  std::lock_guard lock(mutex_);
  log_.clear();
  steps_ = 0;
  crash_step_ = step;
  crashed_ = false;
}

std::vector<std::string> CrashFileSystem::step_log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void CrashFileSystem::step(FsOp op, const std::string& path) {
  check_alive(op, path);
  const uint64_t n = ++steps_;
  const uint64_t armed = crash_step_.load();
  const bool crash = armed != 0 && n >= armed;
  {
    std::lock_guard lock(mutex_);
    log_.push_back("#" + std::to_string(n) + " " + std::string(fs_op_name(op)) + " " + path + (crash ? " (crash)" : ""));
  }
  if (crash) {
    crashed_ = true;
    throw Error(ErrorCode::kIo, "simulated machine crash: " + std::string(fs_op_name(op)) + " " + qp(path) +
                                    " (step " + std::to_string(n) + ") was refused; the machine is down");
  }
}

void CrashFileSystem::check_alive(FsOp op, const std::string& path) const {
  if (crashed_.load()) {
    throw Error(ErrorCode::kIo, "simulated machine crash: " + std::string(fs_op_name(op)) + " " + qp(path) +
                                    " after the crash; the machine is down");
  }
}

CrashFileSystem::DirPtr CrashFileSystem::dir_at(const std::string& dir_path) {
  int fd = ::open(dir_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_sys("open directory " + qp(dir_path), errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw_sys("fstat " + qp(dir_path), err);
  }
  Key key = key_of(st);
  auto it = dirs_.find(key);
  if (it != dirs_.end()) {
    ::close(fd);
    return it->second;
  }
  auto dir = std::make_shared<Dir>();
  dir->fd = fd;
  dir->key = key;
  dirs_.emplace(key, dir);
  return dir;
}

CrashFileSystem::DirPtr CrashFileSystem::dir_of(const std::string& path) { return dir_at(split_parent(path).first); }

void CrashFileSystem::track_file(int fd, bool fresh) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_sys("fstat", errno);
  Key key = key_of(st);
  auto it = files_.find(key);
  if (it != files_.end()) {
    if (fresh) it->second->synced = 0;
    return;
  }
  auto t = std::make_unique<Tracked>();
  t->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (t->fd < 0) throw_sys("dup", errno);
  t->synced = fresh ? 0 : static_cast<uint64_t>(st.st_size);
  files_.emplace(key, std::move(t));
}

void CrashFileSystem::sync_file(int fd, const std::string& path) {
  step(FsOp::kSync, path);
  // The length before the sync: bytes a concurrent write adds meanwhile are not covered.
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_sys("fstat " + qp(path), errno);
  if (::fdatasync(fd) != 0) throw_sys("fdatasync " + qp(path), errno);
  std::lock_guard lock(mutex_);
  auto it = files_.find(key_of(st));
  if (it != files_.end()) it->second->synced = static_cast<uint64_t>(st.st_size);
}

// Reads refuse to run once the machine is down.
class CrashFileSystem::ReadFile final : public ForwardingRandomAccessFile {
 public:
  ReadFile(CrashFileSystem& owner, std::unique_ptr<RandomAccessFile> target)
      : ForwardingRandomAccessFile(std::move(target)), owner_(owner) {}
  size_t read(void* data, size_t length, uint64_t offset) override {
    owner_.check_alive(FsOp::kPread, path());
    return target().read(data, length, offset);
  }

 private:
  CrashFileSystem& owner_;
};

// Writes, syncs and truncations are steps; a sync records the durable length.
class CrashFileSystem::WriteFile final : public WritableFile {
 public:
  WriteFile(CrashFileSystem& owner, std::unique_ptr<posix::PosixWritableFile> file)
      : WritableFile(file->path(), file->direct()), owner_(owner), file_(std::move(file)) {}
  size_t write(const void* data, size_t length, uint64_t offset) override {
    owner_.step(FsOp::kPwrite, path());
    return file_->write(data, length, offset);
  }
  void sync() override { owner_.sync_file(file_->fd(), path()); }
  void truncate(uint64_t length) override {
    owner_.step(FsOp::kTruncate, path());
    file_->truncate(length);
  }
  void close() override {
    // The descriptor is released even after a crash (the process lives on in
    // the test); only the answer says the machine is down.
    file_->close();
    owner_.check_alive(FsOp::kClose, path());
  }

 private:
  CrashFileSystem& owner_;
  std::unique_ptr<posix::PosixWritableFile> file_;
};

std::unique_ptr<RandomAccessFile> CrashFileSystem::open_read(const std::string& path, const OpenReadOptions& options) {
  check_alive(FsOp::kOpen, path);
  PosixFileSystem posix;
  return std::make_unique<ReadFile>(*this, posix.open_read(path, options));
}

std::unique_ptr<WritableFile> CrashFileSystem::open_write(const std::string& path, const OpenWriteOptions& options) {
  step(FsOp::kOpen, path);
  std::lock_guard lock(mutex_);
  DirPtr dir = dir_of(path);
  const std::string name = split_parent(path).second;
  struct stat before;
  const bool existed = ::fstatat(dir->fd, name.c_str(), &before, AT_SYMLINK_NOFOLLOW) == 0;
  bool direct = false;
  const int fd = posix::open_file(path, posix::write_flags(options), options.try_direct, direct);
  auto file = std::make_unique<posix::PosixWritableFile>(path, fd, direct);
  struct stat st;
  if (::fstat(file->fd(), &st) != 0) throw_sys("fstat " + qp(path), errno);
  if (!existed) {
    auto p = std::make_unique<Pending>();
    p->kind = Pending::Kind::kCreate;
    p->a = dir;
    p->a_name = name;
    p->inode = key_of(st);
    p->unsynced = {dir->key};
    pending_.push_back(std::move(p));
  }
  track_file(file->fd(), !existed || options.truncate);
  return std::make_unique<WriteFile>(*this, std::move(file));
}

void CrashFileSystem::rename(const std::string& from, const std::string& to) {
  step(FsOp::kRename, from + " -> " + to);
  std::lock_guard lock(mutex_);
  DirPtr a = dir_of(from);
  DirPtr b = dir_of(to);
  const std::string a_name = split_parent(from).second;
  const std::string b_name = split_parent(to).second;
  struct stat moved;
  if (::fstatat(a->fd, a_name.c_str(), &moved, AT_SYMLINK_NOFOLLOW) != 0) {
    throw_sys("rename " + qp(from) + " to " + qp(to), errno);
  }
  std::string parked;
  struct stat target;
  if (::fstatat(b->fd, b_name.c_str(), &target, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(target.st_mode)) {
      throw Error(ErrorCode::kInternal, "CrashFileSystem: rename " + qp(from) + " over the directory " +
                                            qp(to) + " is outside the crash model");
    }
    // Keep the replaced file reachable so that a crash can bring it back.
    parked = "displaced-" + std::to_string(++trash_counter_);
    if (::linkat(b->fd, b_name.c_str(), trash_fd_, parked.c_str(), 0) != 0) {
      throw_sys("link " + qp(to) + " into the crash trash", errno);
    }
  }
  if (::renameat(a->fd, a_name.c_str(), b->fd, b_name.c_str()) != 0) {
    int err = errno;
    if (!parked.empty()) ::unlinkat(trash_fd_, parked.c_str(), 0);
    throw_sys("rename " + qp(from) + " to " + qp(to), err);
  }
  auto p = std::make_unique<Pending>();
  p->kind = Pending::Kind::kRename;
  p->a = a;
  p->a_name = a_name;
  p->b = b;
  p->b_name = b_name;
  p->inode = key_of(moved);
  p->parked = parked;
  p->unsynced = {a->key, b->key};
  pending_.push_back(std::move(p));
}

bool CrashFileSystem::rename_exchange(const std::string& x, const std::string& y) {
  step(FsOp::kRenameExchange, x + " <-> " + y);
  if (!exchange_supported_.load()) return false;
  std::lock_guard lock(mutex_);
  DirPtr a = dir_of(x);
  DirPtr b = dir_of(y);
  const std::string a_name = split_parent(x).second;
  const std::string b_name = split_parent(y).second;
  if (renameat2_sys(a->fd, a_name, b->fd, b_name, kRenameExchange) != 0) {
    int err = errno;
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) return false;
    throw_sys("renameat2(RENAME_EXCHANGE) " + qp(x) + " and " + qp(y), err);
  }
  auto p = std::make_unique<Pending>();
  p->kind = Pending::Kind::kExchange;
  p->a = a;
  p->a_name = a_name;
  p->b = b;
  p->b_name = b_name;
  p->unsynced = {a->key, b->key};
  pending_.push_back(std::move(p));
  return true;
}

bool CrashFileSystem::mkdir(const std::string& path) {
  step(FsOp::kMkdir, path);
  std::lock_guard lock(mutex_);
  DirPtr dir = dir_of(path);
  const std::string name = split_parent(path).second;
  if (::mkdirat(dir->fd, name.c_str(), 0755) != 0) {
    int err = errno;
    struct stat st;
    if (err == EEXIST && ::fstatat(dir->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      return false;
    }
    throw_sys("mkdir " + qp(path), err);
  }
  struct stat st;
  if (::fstatat(dir->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_sys("stat " + qp(path), errno);
  auto p = std::make_unique<Pending>();
  p->kind = Pending::Kind::kMkdir;
  p->a = dir;
  p->a_name = name;
  p->inode = key_of(st);
  p->unsynced = {dir->key};
  pending_.push_back(std::move(p));
  return true;
}

bool CrashFileSystem::remove(const std::string& path) {
  step(FsOp::kRemove, path);
  std::lock_guard lock(mutex_);
  DirPtr dir;
  try {
    dir = dir_of(path);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return false;
    throw;
  }
  const std::string name = split_parent(path).second;
  struct stat st;
  if (::fstatat(dir->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    throw_sys("remove " + qp(path), errno);
  }
  if (S_ISDIR(st.st_mode) && !dir_is_empty(dir->fd, name)) throw_sys("remove " + qp(path), ENOTEMPTY);
  // Parked, not freed: a crash may have to bring it back.
  std::string parked = "removed-" + std::to_string(++trash_counter_);
  if (::renameat(dir->fd, name.c_str(), trash_fd_, parked.c_str()) != 0) throw_sys("remove " + qp(path), errno);
  auto p = std::make_unique<Pending>();
  p->kind = Pending::Kind::kRemove;
  p->a = dir;
  p->a_name = name;
  p->inode = key_of(st);
  p->parked = parked;
  p->unsynced = {dir->key};
  pending_.push_back(std::move(p));
  return true;
}

void CrashFileSystem::remove_all(const std::string& path) {
  check_alive(FsOp::kRemoveAll, path);
  FileType type = file_type(path);
  if (type == FileType::kNone) return;
  if (type == FileType::kDirectory) {
    std::vector<std::string> names;
    try {
      names = list_dir(path);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound) return;
      throw;
    }
    for (const auto& name : names) remove_all(path + "/" + name);
  }
  remove(path);
}

std::vector<std::string> CrashFileSystem::list_dir(const std::string& path) {
  check_alive(FsOp::kListDir, path);
  PosixFileSystem posix;
  return posix.list_dir(path);
}

FileType CrashFileSystem::file_type(const std::string& path) {
  check_alive(FsOp::kFileType, path);
  PosixFileSystem posix;
  return posix.file_type(path);
}

uint64_t CrashFileSystem::file_size(const std::string& path) {
  check_alive(FsOp::kFileSize, path);
  PosixFileSystem posix;
  return posix.file_size(path);
}

void CrashFileSystem::fsync_dir(const std::string& path) {
  step(FsOp::kFsyncDir, path);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_sys("open directory " + qp(path) + " for fsync", errno);
  struct stat st;
  int rc = ::fstat(fd, &st);
  int err = errno;
  if (rc == 0 && ::fsync(fd) != 0) {
    rc = -1;
    err = errno;
  }
  ::close(fd);
  if (rc != 0) throw_sys("fsync directory " + qp(path), err);
  const Key key = key_of(st);
  std::lock_guard lock(mutex_);
  for (auto& p : pending_) p->unsynced.erase(key);
  std::erase_if(pending_, [](const std::unique_ptr<Pending>& p) { return p->unsynced.empty(); });
}

uint64_t CrashFileSystem::free_space(const std::string& path) {
  check_alive(FsOp::kFreeSpace, path);
  PosixFileSystem posix;
  return posix.free_space(path);
}

size_t CrashFileSystem::pending_changes() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

std::pair<size_t, size_t> CrashFileSystem::simulate_crash(size_t keep_pending) {
  std::lock_guard lock(mutex_);
  keep_pending = std::min(keep_pending, pending_.size());
  auto inconsistent = [](const std::string& what) {
    return Error(ErrorCode::kInternal, "CrashFileSystem: cannot undo " + what + ": " + std::strerror(errno));
  };
  auto entry_is = [](const DirPtr& dir, const std::string& name, const Key& inode) {
    struct stat st;
    return ::fstatat(dir->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && key_of(st) == inode;
  };
  auto move_back = [&](int from_dir, const std::string& from, int to_dir, const std::string& to) {
    if (renameat2_sys(from_dir, from, to_dir, to, kRenameNoReplace) == 0) return true;
    if (errno == EINVAL || errno == ENOSYS) return ::renameat(from_dir, from.c_str(), to_dir, to.c_str()) == 0;
    return false;
  };
  const size_t undone = pending_.size() - keep_pending;
  // Newest first: each undo sees the tree as it was right after its change.
  for (auto it = pending_.rbegin(); it != pending_.rbegin() + static_cast<ptrdiff_t>(undone); ++it) {
    Pending& p = **it;
    switch (p.kind) {
      case Pending::Kind::kCreate:
        if (!entry_is(p.a, p.a_name, p.inode) || ::unlinkat(p.a->fd, p.a_name.c_str(), 0) != 0) {
          throw inconsistent("the creation of " + qp(p.a_name));
        }
        break;
      case Pending::Kind::kMkdir: {
        const std::string parked = "undone-mkdir-" + std::to_string(++trash_counter_);
        if (!entry_is(p.a, p.a_name, p.inode) || !move_back(p.a->fd, p.a_name, trash_fd_, parked)) {
          throw inconsistent("mkdir " + qp(p.a_name));
        }
        break;
      }
      case Pending::Kind::kRename:
        if (!entry_is(p.b, p.b_name, p.inode)) throw inconsistent("rename to " + qp(p.b_name));
        if (!p.parked.empty()) {
          // The source name is free again (it was moved away); the target gets its old file back.
          if (!move_back(p.b->fd, p.b_name, p.a->fd, p.a_name) ||
              ::renameat(trash_fd_, p.parked.c_str(), p.b->fd, p.b_name.c_str()) != 0) {
            throw inconsistent("rename to " + qp(p.b_name));
          }
        } else if (!move_back(p.b->fd, p.b_name, p.a->fd, p.a_name)) {
          throw inconsistent("rename to " + qp(p.b_name));
        }
        break;
      case Pending::Kind::kExchange:
        if (renameat2_sys(p.a->fd, p.a_name, p.b->fd, p.b_name, kRenameExchange) != 0) {
          throw inconsistent("the exchange of " + qp(p.a_name) + " and " + qp(p.b_name));
        }
        break;
      case Pending::Kind::kRemove:
        if (!move_back(trash_fd_, p.parked, p.a->fd, p.a_name)) throw inconsistent("remove " + qp(p.a_name));
        break;
    }
  }
  size_t cut = 0;
  for (auto& [key, t] : files_) {
    struct stat st;
    if (::fstat(t->fd, &st) != 0) throw inconsistent("a file's length");
    if (static_cast<uint64_t>(st.st_size) != t->synced) {
      if (::ftruncate(t->fd, static_cast<off_t>(t->synced)) != 0) throw inconsistent("a file's length");
      ++cut;
    }
  }
  pending_.clear();
  files_.clear();
  dirs_.clear();
  crashed_ = false;
  crash_step_ = 0;
  steps_ = 0;
  return {undone, cut};
}

void CrashFileSystem::make_all_durable() {
  std::lock_guard lock(mutex_);
  pending_.clear();
  files_.clear();
  dirs_.clear();
  log_.clear();
  crashed_ = false;
  crash_step_ = 0;
  steps_ = 0;
}

void CrashFileSystem::release_all() {
  std::lock_guard lock(mutex_);
  pending_.clear();
  files_.clear();
  dirs_.clear();
}

}  // namespace dcpp
