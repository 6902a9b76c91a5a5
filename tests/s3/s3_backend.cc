// The native format on an S3-compatible store (moto, tests/s3/s3_env.h) in
// the conformance suite: every case runs with the checkpoint under
// s3://dcpp-test/<the suite's local path>, written and read through
// S3FileSystem, so the commit without rename (per-save object names, the
// metadata object as the commit) and the ranged reads of the read engine
// are what is tested. Damage goes to the stored object (downloaded, edited,
// uploaded back).
#include <cstdio>
#include <fstream>
#include <iterator>

#include "conformance/backend.h"
#include "dcpp/fs_storage.h"
#include "s3/s3_env.h"

namespace dcpp::testing {
namespace {

void copy_object_to_file(FileSystem& fs, const std::string& object, const std::string& local) {
  auto in = fs.open_read(object);
  std::vector<char> bytes(in->size());
  in->read_full(bytes.data(), bytes.size(), 0);
  std::ofstream(local, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void copy_file_to_object(FileSystem& fs, const std::string& local, const std::string& object) {
  std::ifstream in(local, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto out = fs.open_write(object);
  out->write_all(bytes.data(), bytes.size(), 0);
  out->close();
}

StorageBackend s3_backend() {
  StorageBackend b;
  b.name = "s3";
  b.caps.unavailable = s3_test_server().unavailable.empty() ? "" : "no S3 server: " + s3_test_server().unavailable;
  // The suite's injected file system fails local writes; faults on the way
  // to the store are the fault proxy's (tests/s3/s3_fault_server.cc).
  b.caps.injectable_file_system = false;
  b.caps.file_system_reason = "S3 writes are failed by the fault proxy (s3 fault tests), not by a local file system";
  b.make_writer = [](const std::string& path, const RankContext&, FileSystemPtr) {
    FileSystemWriterOptions options;
    options.filesystem = s3_test_file_system();
    return std::make_unique<FileSystemWriter>(s3_test_path(path), options);
  };
  b.make_reader = [](const std::string& path, const RankContext&) {
    FileSystemReaderOptions options;
    options.filesystem = s3_test_file_system();
    return std::make_unique<FileSystemReader>(s3_test_path(path), options);
  };
  b.list_dir = [](const std::string& dir) {
    std::set<std::string> names;
    for (const auto& n : s3_test_file_system()->list_dir(s3_test_path(dir))) names.insert(n);
    return names;
  };
  b.edit_file = [](const std::string& path, const std::function<void(const std::string&)>& edit) {
    FileSystem& fs = *s3_test_file_system();
    const std::string local = path + ".local";  // beside the suite's own (empty) local directory
    std::string dir = local.substr(0, local.find_last_of('/'));
    default_file_system()->create_directories(dir);
    copy_object_to_file(fs, s3_test_path(path), local);
    edit(local);
    copy_file_to_object(fs, local, s3_test_path(path));
    std::remove(local.c_str());
  };
  return b;
}

DCPP_CONFORMANCE_BACKEND(s3_backend);

}  // namespace
}  // namespace dcpp::testing
