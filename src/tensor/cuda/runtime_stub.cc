// CUDA is off in this build: no devices, and every call that needs one says so.
#include "dcpp/error.h"
#include "tensor/cuda/runtime.h"

namespace dcpp::cuda {

namespace {

[[noreturn]] void off(const std::string& what) {
  throw Error(ErrorCode::kUnsupported, what + ": dcpp was built without CUDA (configure with the CUDA toolkit installed)");
}

}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "dcpp was built without CUDA"; }
std::string device_label(int index) { return "cuda:" + std::to_string(index); }
void require_device(int index, const std::string& what) { off(what + ": " + device_label(index)); }

void* device_alloc(size_t nbytes, int device) {
  off("cudaMalloc(" + std::to_string(nbytes) + " bytes) on " + device_label(device));
}
void device_free(void*, int) noexcept {}
void* pinned_alloc(size_t nbytes) { off("cudaHostAlloc(" + std::to_string(nbytes) + " bytes)"); }
void pinned_free(void*) noexcept {}

const char* direction_name(Direction direction) {
  switch (direction) {
    case Direction::kHostToDevice: return "host to device";
    case Direction::kDeviceToHost: return "device to host";
    case Direction::kDeviceToDevice: return "device to device";
  }
  return "?";
}

void copy(void*, const void*, size_t nbytes, Direction direction, int device, int) {
  off(std::string("cudaMemcpy ") + direction_name(direction) + " (" + std::to_string(nbytes) + " bytes) on " +
      device_label(device));
}
void memset_device(void*, int, size_t nbytes, int device) {
  off("cudaMemset(" + std::to_string(nbytes) + " bytes) on " + device_label(device));
}
StreamHandle stream_create(int device) { off("cudaStreamCreate on " + device_label(device)); }
void stream_destroy(StreamHandle, int) noexcept {}
void copy_async(void*, const void*, size_t nbytes, Direction direction, StreamHandle, int device) {
  off(std::string("cudaMemcpyAsync ") + direction_name(direction) + " (" + std::to_string(nbytes) + " bytes) on " +
      device_label(device));
}
void stream_synchronize(StreamHandle, int device) { off("cudaStreamSynchronize on " + device_label(device)); }

}  // namespace dcpp::cuda
