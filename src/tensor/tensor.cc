#include "dcpp/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>

#include "dcpp/error.h"
#include "tensor/cuda/runtime.h"
#include "tensor/strided_copy.h"

namespace dcpp {

namespace {

[[noreturn]] void invalid(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

void check_sizes(const Shape& shape, const char* what) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) invalid(std::string(what) + ": negative dimension in shape " + shape_to_string(shape));
    if (d != 0 && numel > std::numeric_limits<int64_t>::max() / d) {
      invalid(std::string(what) + ": shape " + shape_to_string(shape) + " has more than 2^63 elements");
    }
    numel *= d;
  }
}

// Element offsets (relative to element [0, ..., 0]) of the lowest and highest
// element a view touches; empty views touch nothing.
struct Extent {
  bool empty = true;
  int64_t lo = 0;
  int64_t hi = 0;
};

Extent extent_of(const Shape& sizes, const Shape& strides) {
  Extent e;
  for (int64_t s : sizes) {
    if (s == 0) return e;
  }
  e.empty = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t span = (sizes[i] - 1) * strides[i];
    if (span < 0) e.lo += span;
    else e.hi += span;
  }
  return e;
}

// Element reads and writes on the host never touch device memory.
void require_host(const Tensor& t, const char* op) {
  if (t.is_cuda()) {
    throw Error(ErrorCode::kUnsupported, std::string(op) + ": the tensor of shape " + shape_to_string(t.sizes()) +
                                             " is in the memory of " + device_string(t.device_spec()) +
                                             "; copy it to the host first (to(Device::kCpu))");
  }
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op, const Shape& shape) {
  if (d < -ndim || d >= ndim) {
    invalid(std::string(op) + ": dim " + std::to_string(d) + " out of range for a tensor of " +
            std::to_string(ndim) + " dims " + shape_to_string(shape));
  }
  return d < 0 ? d + ndim : d;
}

}  // namespace

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

// ---- factories ----

Tensor Tensor::empty(const Shape& shape, DType dtype, DeviceSpec device) {
  check_sizes(shape, "empty");
  if (device.type != Device::kCpu && device.type != Device::kMeta && device.type != Device::kCuda) {
    invalid("empty: invalid device code " + std::to_string(static_cast<int>(device.type)));
  }
  if (device.type != Device::kCuda) device.index = 0;
  Tensor t;
  t.sizes_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.dtype_set_ = true;
  const size_t es = dtype_size(dtype);  // validates dtype
  if (device.type != Device::kMeta) {
    t.storage_ = Storage::allocate(static_cast<size_t>(shape_numel(shape)) * es, device);
  }
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, DeviceSpec device) {
  Tensor t = empty(shape, dtype, device);
  if (t.is_cuda()) {
    cuda::memset_device(t.storage_->data(), 0, t.nbytes(), t.device_index());
  } else if (!t.is_meta()) std::memset(t.storage_->data(), 0, t.nbytes());  // zero bits are 0 in every dtype
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  if (n < 0) invalid("arange: negative length " + std::to_string(n));
  Tensor t = empty({n}, dtype);
  std::byte* p = t.storage_->data();
  const size_t es = dtype_size(dtype);
  for (int64_t i = 0; i < n; ++i) detail::store_double(dtype, p + i * es, static_cast<double>(i));
  return t;
}

Tensor Tensor::uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::byte* p = t.storage_->data();
  const size_t es = dtype_size(dtype);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    detail::store_double(dtype, p + i * es, low + (high - low) * gen.next_uniform());
  }
  return t;
}

Tensor Tensor::normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::byte* p = t.storage_->data();
  const size_t es = dtype_size(dtype);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) detail::store_double(dtype, p + i * es, mean + std * gen.next_normal());
  return t;
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, const Shape& strides) {
  check_sizes(shape, "from_blob");
  const Shape st = strides.empty() ? contiguous_strides(shape) : strides;
  if (st.size() != shape.size()) {
    invalid("from_blob: " + std::to_string(st.size()) + " strides for shape " + shape_to_string(shape));
  }
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  const Extent e = extent_of(shape, st);
  if (data == nullptr && !e.empty) invalid("from_blob: null data for shape " + shape_to_string(shape));
  // The storage starts at the lowest element the view touches, so negative
  // strides stay inside it.
  auto* base = static_cast<std::byte*>(data) + e.lo * es;
  const size_t nbytes = e.empty ? 0 : static_cast<size_t>((e.hi - e.lo + 1) * es);
  Tensor t;
  t.storage_ = Storage::borrow(base, nbytes);
  t.offset_ = -e.lo;
  t.sizes_ = shape;
  t.strides_ = st;
  t.dtype_ = dtype;
  t.dtype_set_ = true;
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, int64_t offset_elements, const Shape& shape,
                            const Shape& strides, DType dtype) {
  if (!storage) invalid("from_storage: null storage");
  check_sizes(shape, "from_storage");
  const Shape st = strides.empty() && !shape.empty() ? contiguous_strides(shape) : strides;
  if (st.size() != shape.size()) {
    invalid("from_storage: " + std::to_string(st.size()) + " strides for shape " + shape_to_string(shape));
  }
  if (offset_elements < 0) invalid("from_storage: negative offset " + std::to_string(offset_elements));
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  const Extent e = extent_of(shape, st);
  if (!e.empty) {
    const int64_t cap = static_cast<int64_t>(storage->nbytes()) / es;
    if (offset_elements + e.lo < 0 || offset_elements + e.hi >= cap) {
      invalid("from_storage: view of shape " + shape_to_string(shape) + " strides " + shape_to_string(st) +
              " at element offset " + std::to_string(offset_elements) + " reaches elements [" +
              std::to_string(offset_elements + e.lo) + ", " + std::to_string(offset_elements + e.hi) +
              "] of a storage holding " + std::to_string(cap) + " " + std::string(dtype_name(dtype)) +
              " elements (" + std::to_string(storage->nbytes()) + " bytes)");
    }
  }
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = offset_elements;
  t.sizes_ = shape;
  t.strides_ = st;
  t.dtype_ = dtype;
  t.device_ = t.storage_->device();
  t.dtype_set_ = true;
  return t;
}

// ---- properties ----

int64_t Tensor::size(int64_t d) const { return sizes_[wrap_dim(d, dim(), "size", sizes_)]; }
int64_t Tensor::stride(int64_t d) const { return strides_[wrap_dim(d, dim(), "stride", sizes_)]; }
int64_t Tensor::numel() const { return shape_numel(sizes_); }

bool Tensor::is_contiguous() const {
  // As PyTorch: strides of size-1 dims do not matter, nor do any when empty.
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = sizes_.size(); i-- > 0;) {
    if (sizes_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= sizes_[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  if (!defined()) invalid("data_ptr() of an undefined tensor");
  if (is_meta()) {
    invalid("data_ptr() of a meta tensor (shape " + shape_to_string(sizes_) + ", " + std::string(dtype_name(dtype_)) +
            "): meta tensors have no data");
  }
  return storage_->data() + offset_ * static_cast<int64_t>(element_size());
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return storage_ != nullptr && storage_ == other.storage_;
}

// ---- views ----

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow", sizes_);
  const int64_t size = sizes_[d];
  const int64_t s = start < 0 && start >= -size ? start + size : start;
  if (s < 0 || length < 0 || s > size || length > size - s) {
    invalid("narrow(dim=" + std::to_string(d) + ", start=" + std::to_string(start) + ", length=" +
            std::to_string(length) + ") out of range for size " + std::to_string(size) + " of tensor " +
            shape_to_string(sizes_));
  }
  Tensor t = *this;
  t.offset_ += s * strides_[d];
  t.sizes_[d] = length;
  return t;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice", sizes_);
  if (step <= 0) invalid("slice: step must be positive, got " + std::to_string(step));
  // Python slice semantics: negative bounds count from the end, and bounds
  // beyond the dim clamp (x[5:100] of 10 elements is x[5:10]).
  const int64_t size = sizes_[d];
  auto clamp = [size](int64_t i) {
    if (i < 0) i += size;
    return std::min(std::max<int64_t>(i, 0), size);
  };
  const int64_t s = clamp(start);
  const int64_t e = std::max(clamp(end), s);
  Tensor t = *this;
  t.offset_ += s * strides_[d];
  t.sizes_[d] = (e - s + step - 1) / step;
  t.strides_[d] *= step;
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select", sizes_);
  const int64_t size = sizes_[d];
  if (index < -size || index >= size) {
    invalid("select(dim=" + std::to_string(d) + ", index=" + std::to_string(index) + ") out of range for size " +
            std::to_string(size) + " of tensor " + shape_to_string(sizes_));
  }
  if (index < 0) index += size;
  Tensor t = *this;
  t.offset_ += index * strides_[d];
  t.sizes_.erase(t.sizes_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose", sizes_);
  d1 = wrap_dim(d1, dim(), "transpose", sizes_);
  Tensor t = *this;
  std::swap(t.sizes_[d0], t.sizes_[d1]);
  std::swap(t.strides_[d0], t.strides_[d1]);
  return t;
}

Tensor Tensor::view(const Shape& shape) const {
  if (!defined()) invalid("view of an undefined tensor");
  if (!is_contiguous()) {
    invalid("view(" + shape_to_string(shape) + ") of a non-contiguous tensor " + shape_to_string(sizes_) +
            " strides " + shape_to_string(strides_) + "; call contiguous() first");
  }
  Shape out = shape;
  int64_t infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) invalid("view(" + shape_to_string(shape) + "): only one dimension can be -1");
      infer = static_cast<int64_t>(i);
    } else if (out[i] < 0) {
      invalid("view(" + shape_to_string(shape) + "): invalid dimension " + std::to_string(out[i]));
    } else {
      known *= out[i];
    }
  }
  const int64_t n = numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0) {
      invalid("view(" + shape_to_string(shape) + "): cannot infer the -1 dimension for " + std::to_string(n) +
              " elements");
    }
    out[infer] = n / known;
  } else if (known != n) {
    invalid("view(" + shape_to_string(shape) + ") is invalid for a tensor of shape " + shape_to_string(sizes_) +
            " (" + std::to_string(n) + " elements)");
  }
  Tensor t = *this;
  t.sizes_ = out;
  t.strides_ = contiguous_strides(out);
  return t;
}

// ---- copies ----

Tensor Tensor::contiguous() const {
  if (!defined()) invalid("contiguous() of an undefined tensor");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  if (!defined()) invalid("clone() of an undefined tensor");
  Tensor t = empty(sizes_, dtype_, device_);
  if (!is_meta()) t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (!defined()) invalid("to(" + std::string(dtype_name(dtype)) + ") of an undefined tensor");
  if (dtype == dtype_) return *this;
  Tensor t = empty(sizes_, dtype, device_);
  if (!is_meta()) t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DeviceSpec device) const {
  if (!defined()) invalid("to(" + device_string(device) + ") of an undefined tensor");
  if (device.type != Device::kCuda) device.index = 0;
  if (device == device_) return *this;
  if (device.type == Device::kMeta) return empty(sizes_, dtype_, device);
  if (is_meta()) {
    invalid("to(" + device_string(device) + "): a meta tensor of shape " + shape_to_string(sizes_) +
            " has no data to copy");
  }
  // A host source is made contiguous on the host; a device source must be.
  const Tensor src = is_cuda() ? *this : contiguous();
  Tensor t = empty(sizes_, dtype_, device);
  t.copy_from(src);
  return t;
}

Tensor& Tensor::copy_from(const Tensor& src) {
  if (!defined() || !src.defined()) invalid("copy_from: undefined tensor");
  if (src.sizes_ != sizes_) {
    invalid("copy_from: shape mismatch, destination " + shape_to_string(sizes_) + " source " +
            shape_to_string(src.sizes_));
  }
  if (is_meta()) return *this;  // shapes checked; a meta destination holds no data
  if (src.is_meta()) {
    invalid("copy_from: cannot copy out of a meta tensor of shape " + shape_to_string(src.sizes_) +
            " (meta tensors have no data)");
  }
  if (storage_ == src.storage_ && offset_ == src.offset_ && strides_ == src.strides_ && dtype_ == src.dtype_) {
    return *this;  // copying a view onto itself
  }
  if (is_cuda() || src.is_cuda()) {
    const std::string what = "copy_from " + device_string(src.device_) + " to " + device_string(device_) +
                             " (shape " + shape_to_string(sizes_) + ")";
    if (dtype_ != src.dtype_) {
      throw Error(ErrorCode::kUnsupported, what + ": dtype conversion (" + std::string(dtype_name(src.dtype_)) +
                                               " to " + std::string(dtype_name(dtype_)) +
                                               ") involving device memory is not supported; convert on the host");
    }
    if (!is_contiguous() || !src.is_contiguous()) {
      throw Error(ErrorCode::kUnsupported, what + ": strided copies involving device memory are not supported; "
                                                  "make both sides contiguous");
    }
    if (nbytes() == 0) return *this;
    const cuda::Direction direction = !src.is_cuda() ? cuda::Direction::kHostToDevice
                                      : !is_cuda()   ? cuda::Direction::kDeviceToHost
                                                     : cuda::Direction::kDeviceToDevice;
    const int device = is_cuda() ? device_.index : src.device_.index;
    cuda::copy(data_ptr(), src.data_ptr(), nbytes(), direction, device, src.device_.index);
    return *this;
  }
  detail::copy_strided(sizes_, dtype_, static_cast<std::byte*>(data_ptr()), strides_.data(), src.dtype_,
                       static_cast<const std::byte*>(src.data_ptr()), src.strides_.data());
  return *this;
}

Tensor& Tensor::fill_(double value) {
  if (!defined()) invalid("fill_ of an undefined tensor");
  if (is_meta()) return *this;
  if (is_cuda()) {
    // Filled on the host, then one copy: no kernel needed for a rare call.
    Tensor host = empty(sizes_, dtype_);
    host.fill_(value);
    copy_from(host);
    return *this;
  }
  alignas(8) std::byte scalar[8];
  detail::store_double(dtype_, scalar, value);
  const Shape zero_strides(sizes_.size(), 0);
  detail::copy_strided(sizes_, dtype_, static_cast<std::byte*>(data_ptr()), strides_.data(), dtype_, scalar,
                       zero_strides.data());
  return *this;
}

// ---- element access ----

namespace {

std::byte* element_ptr(const Tensor& t, const Shape& index, const char* op) {
  require_host(t, op);
  if (static_cast<int64_t>(index.size()) != t.dim()) {
    invalid(std::string(op) + ": index " + shape_to_string(index) + " has " + std::to_string(index.size()) +
            " entries for a tensor of " + std::to_string(t.dim()) + " dims " + shape_to_string(t.sizes()));
  }
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    int64_t k = index[i];
    const int64_t size = t.sizes()[i];
    if (k < -size || k >= size) {
      invalid(std::string(op) + ": index " + shape_to_string(index) + " out of range for tensor " +
              shape_to_string(t.sizes()) + " (dim " + std::to_string(i) + ")");
    }
    if (k < 0) k += size;
    off += k * t.strides()[i];
  }
  return static_cast<std::byte*>(t.data_ptr()) + off * static_cast<int64_t>(t.element_size());
}

}  // namespace

double Tensor::item() const {
  if (!defined()) invalid("item() of an undefined tensor");
  if (numel() != 1) {
    invalid("item() of a tensor with " + std::to_string(numel()) + " elements (shape " + shape_to_string(sizes_) +
            "); it needs exactly one");
  }
  require_host(*this, "item()");
  return detail::load_double(dtype_, static_cast<const std::byte*>(data_ptr()));
}

double Tensor::at(const Shape& index) const {
  if (!defined()) invalid("at() of an undefined tensor");
  return detail::load_double(dtype_, element_ptr(*this, index, "at"));
}

void Tensor::set(const Shape& index, double value) {
  if (!defined()) invalid("set() of an undefined tensor");
  detail::store_double(dtype_, element_ptr(*this, index, "set"), value);
}

// ---- comparisons ----

bool equal(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.sizes() != b.sizes() || a.dtype() != b.dtype() || a.is_meta() != b.is_meta()) return false;
  if (a.is_meta()) return true;
  const Tensor ca = a.to(Device::kCpu).contiguous();
  const Tensor cb = b.to(Device::kCpu).contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

namespace {

// Both operands as contiguous float64 of the same shape.
std::pair<Tensor, Tensor> as_float64_pair(const Tensor& a, const Tensor& b, const char* op) {
  if (!a.defined() || !b.defined()) invalid(std::string(op) + ": undefined tensor");
  if (a.sizes() != b.sizes()) {
    invalid(std::string(op) + ": shape mismatch " + shape_to_string(a.sizes()) + " vs " + shape_to_string(b.sizes()));
  }
  if (a.is_meta() || b.is_meta()) invalid(std::string(op) + ": meta tensors have no values to compare");
  return {a.to(Device::kCpu).to(DType::kFloat64).contiguous(), b.to(Device::kCpu).to(DType::kFloat64).contiguous()};
}

}  // namespace

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  auto [x, y] = as_float64_pair(a, b, "allclose");
  const double* px = x.data<double>();
  const double* py = y.data<double>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    // As torch.isclose: equal values (infinities included) are close,
    // otherwise the difference must be finite and within tolerance; NaN is
    // never close (equal_nan=False).
    if (px[i] == py[i]) continue;
    const double diff = std::fabs(px[i] - py[i]);
    if (!(std::isfinite(diff) && diff <= atol + rtol * std::fabs(py[i]))) return false;
  }
  return true;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto [x, y] = as_float64_pair(a, b, "max_abs_diff");
  const double* px = x.data<double>();
  const double* py = y.data<double>();
  const int64_t n = x.numel();
  double m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (px[i] == py[i]) continue;
    const double d = std::fabs(px[i] - py[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

}  // namespace dcpp
