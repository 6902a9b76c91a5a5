// Private to the torch_dcp storage: torch.save archives of one tensor or one
// plain Python value, as DCP's FileSystemWriter writes them per item.
//
// A tensor archive's data.pkl is
//   torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.XStorage,
//       '0', 'cpu', numel)), storage_offset, size, stride, requires_grad,
//       OrderedDict())
// and its bytes are the entry "<archive>/data/0". Parsing checks every
// field's type and that the strided extent lies inside the storage entry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/planner.h"
#include "dcpp/tensor.h"
#include "storage/torch_dcp/pickle.h"
#include "storage/torch_dcp/zip.h"

namespace dcpp::torch_dcp {

struct SavedTensor {
  DType dtype = DType::kFloat32;
  Shape sizes;
  Shape strides;
  int64_t storage_offset = 0;  // elements
  uint64_t data_offset = 0;    // absolute byte offset of the storage bytes in the file
  uint64_t data_length = 0;    // bytes of the storage entry
};

// The archive lies at [base, base + length) of `file`. `source` names it in errors.
SavedTensor parse_tensor_archive(RandomAccessFile& file, uint64_t base, uint64_t length, const std::string& source);

// A plain value: int → kInt64, float → kDouble, bool → kBool, str → kString,
// bytes → kBytes (its bytes); anything else → kBytes holding the whole raw archive.
struct SavedValue {
  ValueKind kind = ValueKind::kBytes;
  Bytes encoded;  // as dcpp's encode_value encodes the value
};
SavedValue parse_value_archive(RandomAccessFile& file, uint64_t base, uint64_t length, uint64_t max_bytes,
                              const std::string& source);

// torch.save archives in memory-free form: the writer's sink receives the bytes.
// `tensor` must be contiguous; it is written as a storage of its numel elements.
void write_tensor_archive(ZipWriter::Sink sink, const Tensor& tensor);
void write_value_archive(ZipWriter::Sink sink, ValueKind kind, const Bytes& encoded);

// torch.<Name>Storage class name of a dtype ("FloatStorage"), and back.
std::string storage_class_name(DType dtype);
bool dtype_from_storage_class(std::string_view name, DType& dtype);
// torch.<name> dtype attribute ("float32") and back.
std::string torch_dtype_attr(DType dtype);
bool dtype_from_torch_attr(std::string_view name, DType& dtype);

}  // namespace dcpp::torch_dcp
