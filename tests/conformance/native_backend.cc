// The native dcpp format (include/dcpp/fs_storage.h) in the conformance
// suite: every dtype and value kind, an XXH3-64 checksum per block (a
// flipped byte is detected, and errors name file, key and byte offset), and
// a FileSystem option for fault injection. Its data files hold raw bytes,
// so an item is its tensor's bytes.
#include "conformance/backend.h"
#include "dcpp/fs_storage.h"

namespace dcpp::testing {
namespace {

StorageBackend native_backend() {
  StorageBackend b;
  b.name = "native";
  b.make_writer = [](const std::string& path, const RankContext&, FileSystemPtr fs) {
    FileSystemWriterOptions options;
    options.filesystem = std::move(fs);
    return std::make_unique<FileSystemWriter>(path, options);
  };
  b.make_reader = [](const std::string& path, const RankContext&) { return std::make_unique<FileSystemReader>(path); };
  return b;
}

DCPP_CONFORMANCE_BACKEND(native_backend);

}  // namespace
}  // namespace dcpp::testing
