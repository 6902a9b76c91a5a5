// DeviceCopier over the CUDA runtime: pinned buffers from cudaHostAlloc and
// cudaMemcpyAsync on the copier's own non-blocking stream, waited for with
// cudaStreamSynchronize. Built with or without CUDA: without it the calls
// report "built without CUDA".
#include <cstdint>

#include "dcpp/error.h"
#include "io/staging/device_copier.h"
#include "tensor/cuda/runtime.h"

namespace dcpp {

namespace {

class CudaCopier final : public DeviceCopier {
 public:
  explicit CudaCopier(int device) : device_(device), stream_(cuda::stream_create(device)) {}
  ~CudaCopier() override { cuda::stream_destroy(stream_, device_); }

  std::string device() const override { return cuda::device_label(device_); }

  void* allocate_host(size_t nbytes) override {
    void* p = cuda::pinned_alloc(nbytes);
    if (reinterpret_cast<uintptr_t>(p) % kHostAlignment != 0) {
      cuda::pinned_free(p);
      throw Error(ErrorCode::kInternal, "cudaHostAlloc(" + std::to_string(nbytes) + " bytes) for " + device() +
                                            " returned memory not aligned to " + std::to_string(kHostAlignment));
    }
    return p;
  }
  void free_host(void* p, size_t) noexcept override { cuda::pinned_free(p); }

  void to_host(void* host, const void* device, size_t nbytes) override {
    cuda::copy_async(host, device, nbytes, cuda::Direction::kDeviceToHost, stream_, device_);
    cuda::stream_synchronize(stream_, device_);
  }
  void to_device(void* device, const void* host, size_t nbytes) override {
    cuda::copy_async(device, host, nbytes, cuda::Direction::kHostToDevice, stream_, device_);
    cuda::stream_synchronize(stream_, device_);
  }

 private:
  int device_;
  cuda::StreamHandle stream_;
};

}  // namespace

std::unique_ptr<DeviceCopier> make_cuda_copier(int device) {
  cuda::require_device(device, "checkpoint staging");
  return std::make_unique<CudaCopier>(device);
}

}  // namespace dcpp
