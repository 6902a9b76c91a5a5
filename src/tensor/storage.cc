#include <new>

#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "tensor/cuda/runtime.h"

namespace dcpp {

namespace {

// Large tensors start on a page boundary, so the checkpoint writer can hand
// their memory straight to O_DIRECT writes (no staging copy). The alignment
// depends only on the size, so the destructor can recompute it.
size_t alignment_for(size_t nbytes) { return nbytes >= (size_t{1} << 20) ? 4096 : Storage::kAlignment; }

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, DeviceSpec device) {
  if (device.type == Device::kCuda) {
    void* p = cuda::device_alloc(nbytes, device.index);
    std::shared_ptr<Storage> s(new Storage());
    s->data_ = static_cast<std::byte*>(p);
    s->nbytes_ = nbytes;
    s->owned_ = true;
    s->device_ = device;
    return s;
  }
  if (device.type != Device::kCpu) {
    throw Error(ErrorCode::kInvalidArgument, "cannot allocate storage on device " + device_string(device));
  }
  // Never a zero-byte request: an empty tensor still gets a valid, unique,
  // aligned pointer, as PyTorch's allocator gives.
  const size_t align = alignment_for(nbytes);
  const size_t rounded = (nbytes + align - 1) / align * align;
  void* p = ::operator new(rounded == 0 ? align : rounded, std::align_val_t{align}, std::nothrow);
  if (p == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, "cannot allocate " + std::to_string(nbytes) + " bytes of tensor storage");
  }
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = static_cast<std::byte*>(p);
  s->nbytes_ = nbytes;
  s->owned_ = true;
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, std::function<void()> deleter,
                                         DeviceSpec device) {
  std::shared_ptr<Storage> s(new Storage());
  s->device_ = device;
  s->data_ = static_cast<std::byte*>(data);
  s->nbytes_ = nbytes;
  s->owned_ = false;
  s->deleter_ = std::move(deleter);
  return s;
}

Storage::~Storage() {
  if (owned_ && device_.type == Device::kCuda) {
    cuda::device_free(data_, device_.index);
  } else if (owned_) {
    ::operator delete(data_, std::align_val_t{alignment_for(nbytes_)});
  } else if (deleter_) {
    deleter_();
  }
}

}  // namespace dcpp
