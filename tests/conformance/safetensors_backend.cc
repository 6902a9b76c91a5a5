// Hugging Face safetensors (include/dcpp/safetensors_storage.h) in the
// conformance suite, in both layouts PyTorch's HuggingFaceStorageWriter
// writes: full (consolidated whole tensors) and sharded (each rank's chunks
// with their offsets). Every dcpp dtype and, through the "dcpp_values"
// header entry, every value kind. Safetensors has no checksums: a flipped
// byte inside a tensor's data is undetectable; a truncated file is caught by
// the header check (data past the end of the file).
#include "conformance/backend.h"
#include "dcpp/safetensors_storage.h"

namespace dcpp::testing {
namespace {

StorageBackend safetensors_backend(SafetensorsLayout layout) {
  StorageBackend b;
  b.name = layout == SafetensorsLayout::kFull ? "safetensors_full" : "safetensors_sharded";
  b.caps.detects_corruption = false;
  b.caps.corruption_reason =
      "safetensors stores no checksums: a flipped byte inside a tensor's data loads as a different value";
  b.make_writer = [layout](const std::string& path, const RankContext&, FileSystemPtr fs) {
    SafetensorsWriterOptions options;
    options.filesystem = std::move(fs);
    options.layout = layout;
    return std::make_unique<SafetensorsWriter>(path, options);
  };
  b.make_reader = [](const std::string& path, const RankContext&) {
    return std::make_unique<SafetensorsReader>(path);
  };
  return b;
}

StorageBackend safetensors_full_backend() { return safetensors_backend(SafetensorsLayout::kFull); }
StorageBackend safetensors_sharded_backend() { return safetensors_backend(SafetensorsLayout::kSharded); }

DCPP_CONFORMANCE_BACKEND(safetensors_full_backend);
DCPP_CONFORMANCE_BACKEND(safetensors_sharded_backend);

}  // namespace
}  // namespace dcpp::testing
