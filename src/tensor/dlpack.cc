#include "dcpp/dlpack.h"

#include <dlpack/dlpack.h>

#include "dcpp/error.h"
#include "tensor/cuda/runtime.h"

namespace dcpp {

namespace {

// What a DLManagedTensor we produced owns: a handle on the tensor (keeping
// its storage alive) and the shape/stride arrays DLTensor points into.
struct ExportContext {
  Tensor tensor;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  DLManagedTensor managed{};
};

void delete_export(DLManagedTensor* managed) {
  delete static_cast<ExportContext*>(managed->manager_ctx);
}

DLDataType to_dl_dtype(DType dtype) {
  DLDataType t;
  t.lanes = 1;
  t.bits = static_cast<uint8_t>(dtype_size(dtype) * 8);
  switch (dtype) {
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16: t.code = kDLFloat; return t;
    case DType::kBFloat16: t.code = kDLBfloat; return t;
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64: t.code = kDLInt; return t;
    case DType::kUInt8: t.code = kDLUInt; return t;
    case DType::kBool:
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E5M2: break;
  }
  throw Error(ErrorCode::kUnsupported,
              "DLPack 0.6 has no type code for dtype " + std::string(dtype_name(dtype)));
}

DType from_dl_dtype(DLDataType t) {
  const std::string desc = "DLPack dtype (code " + std::to_string(t.code) + ", bits " + std::to_string(t.bits) +
                           ", lanes " + std::to_string(t.lanes) + ")";
  if (t.lanes != 1) throw Error(ErrorCode::kUnsupported, desc + ": vector types are not supported");
  switch (t.code) {
    case kDLFloat:
      if (t.bits == 16) return DType::kFloat16;
      if (t.bits == 32) return DType::kFloat32;
      if (t.bits == 64) return DType::kFloat64;
      break;
    case kDLBfloat:
      if (t.bits == 16) return DType::kBFloat16;
      break;
    case kDLInt:
      if (t.bits == 8) return DType::kInt8;
      if (t.bits == 16) return DType::kInt16;
      if (t.bits == 32) return DType::kInt32;
      if (t.bits == 64) return DType::kInt64;
      break;
    case kDLUInt:
      if (t.bits == 8) return DType::kUInt8;
      break;
    default: break;
  }
  throw Error(ErrorCode::kUnsupported, desc + " has no dcpp equivalent");
}

}  // namespace

DLManagedTensor* to_dlpack(const Tensor& tensor) {
  if (!tensor.defined()) throw Error(ErrorCode::kInvalidArgument, "to_dlpack: undefined tensor");
  const DLDataType dl_dtype = to_dl_dtype(tensor.dtype());
  if (tensor.is_meta()) {
    throw Error(ErrorCode::kInvalidArgument,
                "to_dlpack: meta tensor of shape " + shape_to_string(tensor.sizes()) + " has no data to share");
  }
  auto* ctx = new ExportContext{tensor, tensor.sizes(), tensor.strides(), {}};
  DLManagedTensor& m = ctx->managed;
  m.manager_ctx = ctx;
  m.deleter = &delete_export;
  DLTensor& dl = m.dl_tensor;
  dl.data = tensor.data_ptr();
  dl.device = tensor.is_cuda() ? DLDevice{kDLCUDA, tensor.device_index()} : DLDevice{kDLCPU, 0};
  dl.ndim = static_cast<int32_t>(tensor.dim());
  dl.dtype = dl_dtype;
  dl.shape = ctx->shape.empty() ? nullptr : ctx->shape.data();
  dl.strides = ctx->strides.empty() ? nullptr : ctx->strides.data();
  dl.byte_offset = 0;
  return &m;
}

Tensor from_dlpack(DLManagedTensor* managed) {
  if (managed == nullptr) throw Error(ErrorCode::kInvalidArgument, "from_dlpack: null DLManagedTensor");
  const DLTensor& dl = managed->dl_tensor;
  DeviceSpec device = Device::kCpu;
  if (dl.device.device_type == kDLCUDA) {
    device = DeviceSpec(Device::kCuda, dl.device.device_id);
    // Before anything is taken over: the device must be one this process sees.
    cuda::require_device(dl.device.device_id, "from_dlpack of a kDLCUDA tensor");
  } else if (dl.device.device_type != kDLCPU) {
    throw Error(ErrorCode::kUnsupported, "from_dlpack: device type " + std::to_string(dl.device.device_type) +
                                             " is neither kDLCPU nor kDLCUDA");
  }
  const DType dtype = from_dl_dtype(dl.dtype);
  if (dl.ndim < 0) throw Error(ErrorCode::kInvalidArgument, "from_dlpack: negative ndim " + std::to_string(dl.ndim));
  if (dl.ndim > 0 && dl.shape == nullptr) throw Error(ErrorCode::kInvalidArgument, "from_dlpack: null shape");
  Shape shape(dl.shape, dl.shape + dl.ndim);
  // DLPack 0.6: null strides mean compact row-major.
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  if (dl.data == nullptr && shape_numel(shape) != 0) {
    throw Error(ErrorCode::kInvalidArgument, "from_dlpack: null data for shape " + shape_to_string(shape));
  }
  // View the caller's bytes (validates shape and strides) and only then
  // take ownership, so a rejected tensor stays the caller's to free.
  void* first = static_cast<std::byte*>(dl.data) + dl.byte_offset;
  Tensor view = Tensor::from_blob(first, shape, dtype, strides);
  auto storage = Storage::borrow(
      view.storage()->data(), view.storage()->nbytes(),
      [managed] {
        if (managed->deleter) managed->deleter(managed);
      },
      device);
  return Tensor::from_storage(std::move(storage), view.storage_offset(), shape, strides, dtype);
}

}  // namespace dcpp
