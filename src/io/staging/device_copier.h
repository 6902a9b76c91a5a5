// DeviceCopier — the device side of checkpoint staging: page-locked host
// buffers and blocking copies between them and one device's memory.
//
// The staging pipeline (staging_pool.h, device_to_host.h, host_to_device.h)
// sees the device only through this interface, so its ordering, memory
// bound, overlap and error handling run on the CPU against a host double
// (fake_device.h) as well as on a GPU (make_cuda_copier). A copier is owned
// by its caller and outlives the pools and stagers using it.
// Thread-safety: allocate_host/free_host from any thread; the copies from
// one thread at a time (each stager's copy thread), on the copier's own
// stream, so they overlap whatever the default stream and the host do.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace dcpp {

class DeviceCopier {
 public:
  static constexpr size_t kHostAlignment = 4096;  // O_DIRECT writes straight from the buffers

  virtual ~DeviceCopier() = default;
  // The device, for messages: "cuda:0".
  virtual std::string device() const = 0;
  // kHostAlignment-aligned host memory the copies can use at full speed
  // (cudaHostAlloc on CUDA). Throws on failure.
  virtual void* allocate_host(size_t nbytes) = 0;
  virtual void free_host(void* p, size_t nbytes) noexcept = 0;
  // Return once the bytes have arrived; throw dcpp::Error naming the device
  // and byte count on failure.
  virtual void to_host(void* host, const void* device, size_t nbytes) = 0;
  virtual void to_device(void* device, const void* host, size_t nbytes) = 0;
};

// Copies on a non-blocking stream of CUDA device `device`. Throws
// Error(kUnsupported) naming the device when it is absent or dcpp was built
// without CUDA.
std::unique_ptr<DeviceCopier> make_cuda_copier(int device);

}  // namespace dcpp
