// save(), load() and open_checkpoint() by path: the native format
// (FileSystemWriter / FileSystemReader) behind the storage-neutral API.
#include "dcpp/checkpoint.h"

namespace dcpp {

void save(const StateDict& state_dict, const std::string& path, const SaveOptions& options) {
  FileSystemWriter writer(path);
  save(state_dict, writer, options);
}

void load(StateDict& state_dict, const std::string& path, const LoadOptions& options) {
  FileSystemReader reader(path);
  load(state_dict, reader, options);
}

CheckpointReader open_checkpoint(const std::string& path, FileSystemPtr filesystem) {
  return CheckpointReader(std::make_unique<FileSystemReader>(path, FileSystemReaderOptions{std::move(filesystem)}));
}

}  // namespace dcpp
