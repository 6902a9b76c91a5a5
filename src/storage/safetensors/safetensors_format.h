// Private to the safetensors storage: writing safetensors files and the
// full (Hugging Face) layout, shared by the writer and the converters.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/planner.h"
#include "dcpp/tensor.h"

namespace dcpp::safetensors_detail {

inline constexpr const char* kShardingInfoKey = "DCP_SHARDING_INFO";
inline constexpr const char* kDcpVersionKey = "DCP_VERSION";
inline constexpr const char* kValuesKey = "dcpp_values";
inline constexpr const char* kShardedDir = "sharded";

// One tensor of a file to write; `fetch` returns its bytes (any strides;
// converted to `dtype` and made contiguous by the writer).
struct FileTensor {
  std::string key;
  DType dtype;
  Shape shape;
  std::function<Tensor()> fetch;
};

// Writes one .safetensors file: header (padded to 8 bytes) then the tensors
// in the given order. Returns each tensor's absolute byte offset in the file.
std::vector<uint64_t> write_safetensors_file(FileSystem& fs, const std::string& path,
                                             const std::vector<FileTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata);

// The "dcpp_values" JSON for a set of values (kind and hex bytes), and back.
std::string encode_values_json(const std::map<std::string, std::pair<ValueKind, Bytes>>& values);
std::map<std::string, std::pair<ValueKind, Bytes>> decode_values_json(const std::string& json,
                                                                      const std::string& source);

// "model-00001-of-00003.safetensors", "shard-00002-model-00001-of-00001.safetensors"
// (`shard` is PyTorch's shard_index, rank + 1).
std::string full_file_name(size_t index, size_t count);
std::string sharded_file_name(int shard, size_t index, size_t count);

struct FullLayoutFile {
  std::string name;
  std::vector<std::string> keys;
  std::vector<uint64_t> offsets;  // absolute byte offset of each key's data
  std::vector<uint64_t> lengths;
};
// Writes the full layout into `dir`: tensors split over files by
// `max_shard_size` (0 = one file), values in the first file, and the index
// JSON. One tensor is fetched (and held) at a time.
std::vector<FullLayoutFile> write_full_layout(FileSystem& fs, const std::string& dir,
                                              const std::vector<FileTensor>& tensors,
                                              const std::map<std::string, std::pair<ValueKind, Bytes>>& values,
                                              uint64_t max_shard_size);

// Error(kUnsupported) naming the key if PyTorch's HF reader cannot hold `dtype`.
void check_torch_compatible(const std::string& key, DType dtype);

}  // namespace dcpp::safetensors_detail
