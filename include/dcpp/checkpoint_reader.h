// CheckpointReader: read access to one checkpoint without a mesh or a
// communicator (serving code, tools, format converters), through any
// StorageReader: keys with dtype and global shape, values, whole tensors or
// any box of one. A box read fetches (and verifies) only the checksum blocks
// that hold it. The reader owns its StorageReader; it is movable, not
// copyable, and not thread-safe (one reader per thread). dcpp::open_checkpoint
// (dcpp/checkpoint.h) opens a native checkpoint by path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/metadata.h"
#include "dcpp/state_dict.h"
#include "dcpp/storage.h"
#include "dcpp/tensor.h"

namespace dcpp {

class CheckpointReader {
 public:
  struct TensorInfo {
    DType dtype;
    Shape shape;
  };

  // Reads (and verifies) the metadata through `reader`, which it keeps.
  explicit CheckpointReader(std::unique_ptr<StorageReader> reader);
  ~CheckpointReader();
  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const Metadata& metadata() const { return metadata_; }
  // Every key (tensors and values), sorted.
  std::vector<std::string> keys() const;
  std::vector<std::string> tensor_keys() const;
  std::vector<std::string> value_keys() const;
  bool contains(const std::string& key) const { return metadata_.contains(key); }
  bool is_tensor(const std::string& key) const { return metadata_.tensors.count(key) != 0; }
  // Throws Error(kNotFound) naming the key (and kInvalidArgument for a value).
  TensorInfo tensor_info(const std::string& key) const;

  // A non-tensor value (int64, double, bool, string or Bytes).
  StateValue value(const std::string& key);
  // The whole tensor, in its saved dtype or converted to `dtype`.
  Tensor read(const std::string& key, std::optional<DType> dtype = std::nullopt);
  // The box [offsets, offsets + sizes) of the tensor.
  Tensor read(const std::string& key, const Shape& offsets, const Shape& sizes,
              std::optional<DType> dtype = std::nullopt);
  // Reads the box starting at `offsets` with `out`'s shape into `out` (any
  // dtype, any strides: a caller buffer wrapped with Tensor::from_blob works).
  void read_into(const std::string& key, const Shape& offsets, Tensor& out);

 private:
  std::unique_ptr<StorageReader> reader_;
  Metadata metadata_;
};

}  // namespace dcpp
