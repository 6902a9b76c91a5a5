// save(), load() and open_checkpoint() by path: the native format
// (FileSystemWriter / FileSystemReader) behind the storage-neutral API, on
// the file system the path names (file_system_for_path: s3:// paths go to
// an object store).
#include "dcpp/checkpoint.h"
#include "dcpp/s3_file_system.h"

namespace dcpp {

void save(const StateDict& state_dict, const std::string& path, const SaveOptions& options) {
  FileSystemWriterOptions wopts;
  wopts.filesystem = file_system_for_path(path);
  FileSystemWriter writer(path, wopts);
  save(state_dict, writer, options);
}

void load(StateDict& state_dict, const std::string& path, const LoadOptions& options) {
  FileSystemReaderOptions ropts;
  ropts.filesystem = file_system_for_path(path);
  FileSystemReader reader(path, ropts);
  load(state_dict, reader, options);
}

CheckpointReader open_checkpoint(const std::string& path, FileSystemPtr filesystem) {
  if (!filesystem) filesystem = file_system_for_path(path);
  return CheckpointReader(std::make_unique<FileSystemReader>(path, FileSystemReaderOptions{std::move(filesystem)}));
}

}  // namespace dcpp
