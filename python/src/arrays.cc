#include "arrays.h"

#include <vector>

#include "dcpp/error.h"

namespace dcpp::python {
namespace {

using Code = nb::dlpack::dtype_code;

template <typename Array>
Tensor wrap(const Array& array) {
  const DType dtype = dtype_from_dlpack(array.dtype());
  Shape shape(array.ndim()), strides(array.ndim());
  for (size_t d = 0; d < array.ndim(); ++d) {
    shape[d] = static_cast<int64_t>(array.shape(d));
    strides[d] = array.stride(d);
  }
  return Tensor::from_blob(const_cast<void*>(static_cast<const void*>(array.data())), shape, dtype, strides);
}

template <typename Array>
Array to_array(const Tensor& tensor, DType dtype) {
  std::vector<size_t> shape(tensor.sizes().begin(), tensor.sizes().end());
  std::vector<int64_t> strides(tensor.strides().begin(), tensor.strides().end());
  auto* keep = new Tensor(tensor);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  return Array(tensor.numel() == 0 ? nullptr : tensor.data_ptr(), shape.size(), shape.data(),
                                owner, strides.data(), dtype_to_dlpack(dtype));
}

}  // namespace

DType dtype_from_dlpack(nb::dlpack::dtype dtype) {
  if (dtype.lanes == 1) {
    switch (static_cast<Code>(dtype.code)) {
      case Code::Float:
        if (dtype.bits == 32) return DType::kFloat32;
        if (dtype.bits == 64) return DType::kFloat64;
        if (dtype.bits == 16) return DType::kFloat16;
        break;
      case Code::Bfloat:
        if (dtype.bits == 16) return DType::kBFloat16;
        break;
      case Code::Int:
        if (dtype.bits == 8) return DType::kInt8;
        if (dtype.bits == 16) return DType::kInt16;
        if (dtype.bits == 32) return DType::kInt32;
        if (dtype.bits == 64) return DType::kInt64;
        break;
      case Code::UInt:
        if (dtype.bits == 8) return DType::kUInt8;
        break;
      case Code::Bool:
        if (dtype.bits == 8) return DType::kBool;
        break;
      default:
        break;
    }
  }
  throw Error(ErrorCode::kUnsupported, "array dtype (DLPack code " + std::to_string(dtype.code) + ", " +
                                           std::to_string(dtype.bits) + " bits, " + std::to_string(dtype.lanes) +
                                           " lanes) has no dcpp dtype");
}

nb::dlpack::dtype dtype_to_dlpack(DType dtype) {
  auto make = [](Code code, int bits) {
    nb::dlpack::dtype d;
    d.code = static_cast<uint8_t>(code);
    d.bits = static_cast<uint8_t>(bits);
    d.lanes = 1;
    return d;
  };
  switch (dtype) {
    case DType::kFloat32: return make(Code::Float, 32);
    case DType::kFloat64: return make(Code::Float, 64);
    case DType::kFloat16: return make(Code::Float, 16);
    case DType::kBFloat16: return make(Code::Bfloat, 16);
    case DType::kInt8: return make(Code::Int, 8);
    case DType::kInt16: return make(Code::Int, 16);
    case DType::kInt32: return make(Code::Int, 32);
    case DType::kInt64: return make(Code::Int, 64);
    case DType::kUInt8: return make(Code::UInt, 8);
    case DType::kBool: return make(Code::Bool, 8);
    default: break;
  }
  throw Error(ErrorCode::kUnsupported, "dtype " + std::string(dtype_name(dtype)) + " has no DLPack code");
}

Tensor tensor_from_array(const ReadOnlyArray& array) { return wrap(array); }
Tensor tensor_from_array(const AnyArray& array) { return wrap(array); }

nb::ndarray<nb::numpy> tensor_to_numpy(const Tensor& tensor, const std::string& key) {
  const DType dtype = tensor.dtype();
  if (dtype == DType::kBFloat16 || dtype == DType::kFloat8E4M3FN || dtype == DType::kFloat8E5M2) {
    throw Error(ErrorCode::kUnsupported,
                "'" + key + "' is " + std::string(dtype_name(dtype)) +
                    ", which NumPy has no dtype for: pass dtype='float32' to convert, or use read_dlpack() "
                    "and torch.from_dlpack");
  }
  return to_array<nb::ndarray<nb::numpy>>(tensor, dtype);
}

nb::ndarray<nb::array_api> tensor_to_dlpack(const Tensor& tensor, const std::string& key) {
  if (tensor.dtype() == DType::kFloat8E4M3FN || tensor.dtype() == DType::kFloat8E5M2) {
    throw Error(ErrorCode::kUnsupported, "'" + key + "' is " + std::string(dtype_name(tensor.dtype())) +
                                             ", which DLPack 0.6 has no code for: pass dtype= to convert");
  }
  return to_array<nb::ndarray<nb::array_api>>(tensor, tensor.dtype());
}

}  // namespace dcpp::python
