// The CUDA runtime API behind runtime.h. Every call goes through check(),
// which turns a cudaError_t into a dcpp::Error naming the call, device and
// bytes.
#include "tensor/cuda/runtime.h"

#include <cuda_runtime_api.h>


#include "dcpp/error.h"

namespace dcpp::cuda {

namespace {

struct DeviceCount {
  int count = 0;
  std::string reason;
};

const DeviceCount& probe() {
  static const DeviceCount result = [] {
    DeviceCount r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      r.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
      (void)cudaGetLastError();  // clear the sticky-free error state for later calls
      return r;
    }
    r.count = n;
    if (n == 0) r.reason = "cudaGetDeviceCount: 0 devices";
    return r;
  }();
  return result;
}

void check(cudaError_t e, const std::string& call) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  const std::string message = call + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")";
  if (e == cudaErrorMemoryAllocation) throw Error(ErrorCode::kInvalidArgument, message);
  if (e == cudaErrorInvalidDevice || e == cudaErrorNoDevice) throw Error(ErrorCode::kUnsupported, message);
  throw Error(ErrorCode::kIo, message);
}

std::string bytes(size_t n) { return std::to_string(n) + " bytes"; }

// The runtime's current device is per thread: set it before each call that
// allocates or creates on a device.
void use(int device, const std::string& what) {
  require_device(device, what);
  check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ") for " + what);
}

cudaMemcpyKind kind_of(Direction direction) {
  switch (direction) {
    case Direction::kHostToDevice: return cudaMemcpyHostToDevice;
    case Direction::kDeviceToHost: return cudaMemcpyDeviceToHost;
    case Direction::kDeviceToDevice: return cudaMemcpyDeviceToDevice;
  }
  return cudaMemcpyDefault;
}

}  // namespace

bool built_with_cuda() { return true; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }
std::string device_label(int index) { return "cuda:" + std::to_string(index); }

void require_device(int index, const std::string& what) {
  const DeviceCount& d = probe();
  if (d.count == 0) {
    throw Error(ErrorCode::kUnsupported, what + ": no CUDA device for " + device_label(index) + " (" + d.reason + ")");
  }
  if (index < 0 || index >= d.count) {
    throw Error(ErrorCode::kUnsupported, what + ": " + device_label(index) + " is not among the " +
                                             std::to_string(d.count) + " CUDA device(s) this process sees");
  }
}

void* device_alloc(size_t nbytes, int device) {
  const std::string what = "cudaMalloc(" + bytes(nbytes) + ") on " + device_label(device);
  use(device, what);
  void* p = nullptr;
  check(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes), what);
  return p;
}

void device_free(void* p, int device) noexcept {
  if (p == nullptr) return;
  if (cudaSetDevice(device) == cudaSuccess) (void)cudaFree(p);
  (void)cudaGetLastError();
}

void* pinned_alloc(size_t nbytes) {
  const std::string what = "cudaHostAlloc(" + bytes(nbytes) + ", portable)";
  require_device(0, what);
  void* p = nullptr;
  check(cudaHostAlloc(&p, nbytes == 0 ? 1 : nbytes, cudaHostAllocPortable), what);
  return p;
}

void pinned_free(void* p) noexcept {
  if (p != nullptr) (void)cudaFreeHost(p);
  (void)cudaGetLastError();
}

const char* direction_name(Direction direction) {
  switch (direction) {
    case Direction::kHostToDevice: return "host to device";
    case Direction::kDeviceToHost: return "device to host";
    case Direction::kDeviceToDevice: return "device to device";
  }
  return "?";
}

void copy(void* dst, const void* src, size_t nbytes, Direction direction, int device, int src_device) {
  if (direction == Direction::kDeviceToDevice && src_device >= 0 && src_device != device) {
    const std::string what = "cudaMemcpyPeer(" + bytes(nbytes) + ") from " + device_label(src_device) + " to " +
                             device_label(device);
    require_device(src_device, what);
    use(device, what);
    check(cudaMemcpyPeer(dst, device, src, src_device, nbytes), what);
    return;
  }
  const std::string what =
      std::string("cudaMemcpy ") + direction_name(direction) + " (" + bytes(nbytes) + ") on " + device_label(device);
  use(device, what);
  check(cudaMemcpy(dst, src, nbytes, kind_of(direction)), what);
}

void memset_device(void* p, int value, size_t nbytes, int device) {
  const std::string what = "cudaMemset(" + bytes(nbytes) + ") on " + device_label(device);
  use(device, what);
  check(cudaMemset(p, value, nbytes), what);
}

StreamHandle stream_create(int device) {
  const std::string what = "cudaStreamCreateWithFlags(non-blocking) on " + device_label(device);
  use(device, what);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), what);
  return static_cast<StreamHandle>(s);
}

void stream_destroy(StreamHandle stream, int device) noexcept {
  if (stream == nullptr) return;
  if (cudaSetDevice(device) == cudaSuccess) (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream));
  (void)cudaGetLastError();
}

void copy_async(void* dst, const void* src, size_t nbytes, Direction direction, StreamHandle stream, int device) {
  const std::string what = std::string("cudaMemcpyAsync ") + direction_name(direction) + " (" + bytes(nbytes) +
                           ") on " + device_label(device);
  use(device, what);
  check(cudaMemcpyAsync(dst, src, nbytes, kind_of(direction), static_cast<cudaStream_t>(stream)), what);
}

void stream_synchronize(StreamHandle stream, int device) {
  const std::string what = "cudaStreamSynchronize on " + device_label(device);
  use(device, what);
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), what);
}

}  // namespace dcpp::cuda
