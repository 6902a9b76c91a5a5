#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "dcpp/error.h"
#include "dcpp/io.h"
#include "io/posix_file.h"

namespace dcpp {
namespace posix {

void throw_sys(const std::string& what, int err) {
  if (err == ENOENT) {
    throw Error(ErrorCode::kNotFound,
                what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")");
  }
  throw_errno(what, err);
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

int open_file(const std::string& path, int flags, bool try_direct, bool& direct) {
  flags |= O_CLOEXEC;
  if (try_direct) {
    int fd = ::open(path.c_str(), flags | O_DIRECT, 0644);
    if (fd >= 0) {
      direct = true;
      return fd;
    }
    // tmpfs and some network file systems refuse O_DIRECT with EINVAL: fall
    // back to buffered I/O rather than fail the save.
    if (errno != EINVAL) throw_sys("open " + quoted(path) + " (O_DIRECT)", errno);
  }
  direct = false;
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) throw_sys("open " + quoted(path), errno);
  return fd;
}

int write_flags(const OpenWriteOptions& options) {
  int flags = O_WRONLY;
  if (options.create) flags |= O_CREAT;
  if (options.truncate) flags |= O_TRUNC;
  if (options.exclusive) flags |= O_EXCL;
  return flags;
}

namespace {

std::string at_context(const std::string& path, size_t length, uint64_t offset) {
  return quoted(path) + " at offset " + std::to_string(offset) + " length " + std::to_string(length);
}

// One read/write never asks the kernel for more than it will do in one call.
constexpr size_t kMaxTransfer = 0x7ffff000;

}  // namespace

PosixRandomAccessFile::~PosixRandomAccessFile() { ::close(fd_); }

size_t PosixRandomAccessFile::read(void* data, size_t length, uint64_t offset) {
  for (;;) {
    ssize_t n = ::pread(fd_, data, std::min(length, kMaxTransfer), static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    throw_sys("pread " + at_context(path(), length, offset), errno);
  }
}

uint64_t PosixRandomAccessFile::size() {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw_sys("fstat " + quoted(path()), errno);
  return static_cast<uint64_t>(st.st_size);
}

PosixWritableFile::~PosixWritableFile() {
  // The error path: whatever failed first is what the caller reports.
  if (fd_ >= 0) ::close(fd_);
}

size_t PosixWritableFile::write(const void* data, size_t length, uint64_t offset) {
  for (;;) {
    ssize_t n = ::pwrite(fd_, data, std::min(length, kMaxTransfer), static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    throw_sys("pwrite " + at_context(path(), length, offset), errno);
  }
}

void PosixWritableFile::sync() {
  // fdatasync: the data and the length (needed to read the data back) are
  // flushed; timestamps are not, and nothing here depends on them.
  if (::fdatasync(fd_) != 0) throw_sys("fdatasync " + quoted(path()), errno);
}

void PosixWritableFile::truncate(uint64_t length) {
  if (::ftruncate(fd_, static_cast<off_t>(length)) != 0) {
    throw_sys("ftruncate " + quoted(path()) + " to " + std::to_string(length) + " bytes", errno);
  }
}

void PosixWritableFile::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  // The descriptor is released even when close reports an error (Linux), so
  // retrying would risk closing someone else's descriptor.
  if (::close(fd) != 0 && errno != EINTR) throw_sys("close " + quoted(path()), errno);
}

}  // namespace posix

using posix::quoted;
using posix::throw_sys;

size_t RandomAccessFile::read_full(void* data, size_t length, uint64_t offset) {
  auto* p = static_cast<std::byte*>(data);
  size_t total = 0;
  while (total < length) {
    size_t n = read(p + total, length - total, offset + total);
    if (n == 0) break;  // end of file
    total += n;
  }
  return total;
}

void WritableFile::write_all(const void* data, size_t length, uint64_t offset) {
  const auto* p = static_cast<const std::byte*>(data);
  int stalls = 0;
  auto context = [&] {
    return quoted(path()) + " at offset " + std::to_string(offset) + " length " + std::to_string(length);
  };
  while (length > 0) {
    size_t n = write(p, length, offset);
    if (n == 0) throw Error(ErrorCode::kIo, "pwrite " + context() + " made no progress");
    if (direct() && n < length && n % kIoAlignment != 0) {
      // O_DIRECT needs page-aligned offsets: continuing at offset + n would
      // fail with EINVAL and hide the real cause (usually a full disk). Go
      // on from the last whole page instead, rewriting the partial one.
      n = n / kIoAlignment * kIoAlignment;
      if (n == 0) {
        if (++stalls > 8) {
          throw Error(ErrorCode::kIo, "pwrite " + context() +
                                          ": direct-I/O writes keep coming back short of a whole page "
                                          "(is the file system full?)");
        }
        continue;
      }
    }
    stalls = 0;
    p += n;
    offset += n;
    length -= n;
  }
}

void FileSystem::create_directories(const std::string& path) {
  if (path.empty()) return;
  FileType type = file_type(path);
  if (type == FileType::kDirectory) return;
  if (type != FileType::kNone) {
    throw Error(ErrorCode::kIo, "cannot create directory " + quoted(path) + ": a non-directory is in the way");
  }
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) create_directories(path.substr(0, slash));
  mkdir(path);
}

std::unique_ptr<RandomAccessFile> PosixFileSystem::open_read(const std::string& path, const OpenReadOptions& options) {
  bool direct = false;
  const int fd = posix::open_file(path, O_RDONLY, options.try_direct, direct);
  return std::make_unique<posix::PosixRandomAccessFile>(path, fd, direct);
}

std::unique_ptr<WritableFile> PosixFileSystem::open_write(const std::string& path, const OpenWriteOptions& options) {
  bool direct = false;
  const int fd = posix::open_file(path, posix::write_flags(options), options.try_direct, direct);
  return std::make_unique<posix::PosixWritableFile>(path, fd, direct);
}

void PosixFileSystem::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw_sys("rename " + quoted(from) + " to " + quoted(to), errno);
  }
}

bool PosixFileSystem::rename_exchange(const std::string& a, const std::string& b) {
#ifdef SYS_renameat2
  constexpr unsigned kRenameExchange = 2;  // RENAME_EXCHANGE, not exposed by every libc header
  if (::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), kRenameExchange) == 0) return true;
  int err = errno;
  if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) return false;
  throw_sys("renameat2(RENAME_EXCHANGE) " + quoted(a) + " and " + quoted(b), err);
#else
  return false;
#endif
}

bool PosixFileSystem::mkdir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return true;
  int err = errno;
  if (err == EEXIST && file_type(path) == FileType::kDirectory) return false;
  throw_sys("mkdir " + quoted(path), err);
}

bool PosixFileSystem::remove(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return true;
  int err = errno;
  if (err == ENOENT) return false;
  if (err == EISDIR || err == EPERM) {
    if (::rmdir(path.c_str()) == 0) return true;
    err = errno;
    if (err == ENOENT) return false;
  }
  throw_sys("remove " + quoted(path), err);
}

void PosixFileSystem::remove_all(const std::string& path) {
  FileType type = file_type(path);
  if (type == FileType::kNone) return;
  if (type == FileType::kDirectory) {
    std::vector<std::string> names;
    try {
      names = list_dir(path);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound) return;  // removed concurrently
      throw;
    }
    for (const auto& name : names) remove_all(path + "/" + name);
  }
  remove(path);
}

std::vector<std::string> PosixFileSystem::list_dir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) throw_sys("opendir " + quoted(path), errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      int err = errno;
      ::closedir(dir);
      if (err != 0) throw_sys("readdir " + quoted(path), err);
      break;
    }
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

FileType PosixFileSystem::file_type(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return FileType::kNone;
    throw_sys("lstat " + quoted(path), err);
  }
  if (S_ISREG(st.st_mode)) return FileType::kRegular;
  if (S_ISDIR(st.st_mode)) return FileType::kDirectory;
  return FileType::kOther;
}

uint64_t PosixFileSystem::file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw_sys("stat " + quoted(path), errno);
  return static_cast<uint64_t>(st.st_size);
}

void PosixFileSystem::fsync_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_sys("open directory " + quoted(path) + " for fsync", errno);
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw_sys("fsync directory " + quoted(path), err);
  }
  ::close(fd);
}

uint64_t PosixFileSystem::free_space(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) throw_sys("statvfs " + quoted(path), errno);
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

FileSystemPtr default_file_system() {
  static const FileSystemPtr fs = std::make_shared<PosixFileSystem>();
  return fs;
}

}  // namespace dcpp
