// dcpp::Tensor — an n-dimensional strided view over shared, aligned storage.
//
// A Tensor is a handle: copying it aliases the same storage (as PyTorch
// tensors do); clone() makes an independent copy. Storage is either owned
// (64-byte aligned, freed with the last handle) or borrowed from the caller
// (from_blob, DLPack), in which case the caller keeps it alive. A tensor on
// the meta device has shape and dtype but no storage; asking for its data
// throws. A tensor on a CUDA device (Device::kCuda, with an index) holds GPU
// memory from the CUDA allocator: data_ptr() is a device pointer, to() and
// copy_from() move bytes between host and devices, and the operations that
// read or write elements on the host (fill_, at, item, arithmetic elsewhere)
// throw Error(kUnsupported) naming the device instead of touching it. Views (narrow, slice, select) share storage with their base.
// Thread-safety: distinct handles may be used from distinct threads; writes
// to shared storage need external synchronisation, as with any memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "dcpp/dtype.h"

namespace dcpp {

// Deterministic random stream (same seed → same values on every rank, run
// and platform). Not thread-safe; give each thread its own.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0);
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  double next_uniform();  // [0, 1), 53 random bits
  double next_normal();   // standard normal

 private:
  uint64_t state_[4];
  bool has_spare_normal_ = false;
  double spare_normal_ = 0;
};

// Aligned owning or borrowed bytes on one device. Owned by the Tensors that
// reference it.
class Storage {
 public:
  static constexpr size_t kAlignment = 64;
  // Owning, uninitialised: 64-byte aligned host memory, or memory from the
  // CUDA allocator (256-byte aligned) on a CUDA device; throws
  // Error(kUnsupported) naming the device when it is absent.
  static std::shared_ptr<Storage> allocate(size_t nbytes, DeviceSpec device = Device::kCpu);
  // Borrowed: `deleter` (may be empty) runs when the last handle goes.
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, std::function<void()> deleter = {},
                                         DeviceSpec device = Device::kCpu);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::byte* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  bool owned() const { return owned_; }
  DeviceSpec device() const { return device_; }

 private:
  Storage() = default;
  std::byte* data_ = nullptr;
  size_t nbytes_ = 0;
  bool owned_ = false;
  DeviceSpec device_;
  std::function<void()> deleter_;
};

class Tensor {
 public:
  // An undefined tensor (defined() == false).
  Tensor() = default;

  // ---- factories ----
  static Tensor empty(const Shape& shape, DType dtype = DType::kFloat32, DeviceSpec device = Device::kCpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::kFloat32, DeviceSpec device = Device::kCpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kFloat32);
  static Tensor arange(int64_t n, DType dtype = DType::kFloat32);  // 0, 1, ..., n-1, shape [n]
  // Uniform in [low, high) / normal(mean, std), drawn in row-major order.
  static Tensor uniform(const Shape& shape, double low, double high, Generator& gen,
                        DType dtype = DType::kFloat32);
  static Tensor normal(const Shape& shape, double mean, double std, Generator& gen,
                       DType dtype = DType::kFloat32);
  // Non-owning view over caller memory; strides in elements (empty = contiguous).
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, const Shape& strides = {});
  // A view over existing storage (used by DLPack import and the I/O layer);
  // the tensor is on the storage's device.
  static Tensor from_storage(std::shared_ptr<Storage> storage, int64_t offset_elements, const Shape& shape,
                             const Shape& strides, DType dtype);

  // ---- properties ----
  bool defined() const { return dtype_set_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_.type; }
  int device_index() const { return device_.index; }
  DeviceSpec device_spec() const { return device_; }
  bool is_meta() const { return device_.type == Device::kMeta; }
  bool is_cuda() const { return device_.type == Device::kCuda; }
  int64_t dim() const { return static_cast<int64_t>(sizes_.size()); }
  const Shape& sizes() const { return sizes_; }
  const Shape& shape() const { return sizes_; }
  int64_t size(int64_t d) const;  // negative d counts from the end
  const Shape& strides() const { return strides_; }
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  size_t element_size() const { return dtype_size(dtype_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  int64_t storage_offset() const { return offset_; }
  bool is_contiguous() const;
  // Pointer to element [0, ..., 0] (a device pointer on CUDA); throws
  // Error(kInvalidArgument) on meta.
  void* data_ptr() const;
  template <typename T>
  T* data() const { return static_cast<T*>(data_ptr()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // True when both view the same storage (aliasing, the Python `is` of data).
  bool shares_storage_with(const Tensor& other) const;

  // ---- views (share storage) ----
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor view(const Shape& shape) const;  // contiguous tensors only; one -1 allowed

  // ---- copies ----
  Tensor contiguous() const;  // self if already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (meta stays meta)
  Tensor to(DType dtype) const;  // converted contiguous copy (self if same dtype)
  // A contiguous copy on `device` (self if already there), as PyTorch's
  // to(device): host↔device and device↔device (peer) copies; to meta gives
  // an empty meta tensor; from meta is an error.
  Tensor to(DeviceSpec device) const;
  // Copies src into this view. Same shape required. Same dtype: strided copy
  // where contiguous runs become single memcpy calls. Different dtype:
  // converts element-wise as PyTorch's copy_ does (float→int truncates,
  // nonzero→true). Overlapping src/dst is not supported. When either side is
  // on a CUDA device both must be contiguous and of the same dtype
  // (Error(kUnsupported) otherwise): the copy is one cudaMemcpy.
  Tensor& copy_from(const Tensor& src);
  Tensor& fill_(double value);

  // ---- element access (slow; for tests, printing and small scalars) ----
  double item() const;  // a one-element tensor's value
  double at(const Shape& index) const;
  void set(const Shape& index, double value);

  std::string to_string(int64_t max_elements = 64) const;

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements
  Shape sizes_;
  Shape strides_;
  DType dtype_ = DType::kFloat32;
  DeviceSpec device_;
  bool dtype_set_ = false;
};

// Contiguous row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);

// Same shape, dtype and every byte equal (bit-exact; NaN equals NaN of the
// same bits). Meta tensors compare by shape and dtype only. CUDA tensors are
// copied to the host to compare (here and in allclose, max_abs_diff).
bool equal(const Tensor& a, const Tensor& b);
// |a - b| <= atol + rtol * |b| element-wise, same shape; dtypes may differ.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-6);
// Largest |a - b| (for error messages).
double max_abs_diff(const Tensor& a, const Tensor& b);

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace dcpp
