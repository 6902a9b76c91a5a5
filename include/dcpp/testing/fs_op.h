// FsOp: names the calls of the byte-store seam (dcpp/io.h), for the test
// file systems that count, fail or log them (dcpp/testing/).
//
// kOpen counts FileSystem::open_read and open_write; kPwrite, kPread, kSync,
// kTruncate and kClose are the WritableFile / RandomAccessFile calls
// (write, read, sync, truncate, close); the rest are the FileSystem calls of
// the same name. Plain values, no state.
#pragma once

#include <string_view>

namespace dcpp {

enum class FsOp {
  kOpen, kPwrite, kPread, kSync, kTruncate, kClose, kRename, kRenameExchange,
  kMkdir, kRemove, kRemoveAll, kListDir, kFileType, kFileSize, kFsyncDir, kFreeSpace,
};
inline constexpr int kNumFsOps = 16;
std::string_view fs_op_name(FsOp op);

}  // namespace dcpp
