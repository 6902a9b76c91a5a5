// The CUDA runtime calls dcpp makes, each checked: a failure throws
// dcpp::Error naming the call, the device ("cuda:1") and the byte count.
//
// runtime.cc implements them with the CUDA runtime API (plain C++, linked
// to cudart privately; no CUDA header reaches a public header);
// runtime_stub.cc, built when CUDA is off, reports zero devices and throws
// Error(kUnsupported) "built without CUDA" from every other call. Callers
// own what they allocate (device and pinned memory, streams) and free it
// with the matching call. Error codes: no such device → kUnsupported, out of
// memory → kInvalidArgument (as for host storage), any other failed call →
// kIo (the device refused the operation).
// Thread-safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <string>

namespace dcpp::cuda {

// True when dcpp was built with the CUDA toolkit.
bool built_with_cuda();
// GPUs the process sees; 0 without CUDA or when the driver finds none.
// Asked once, then cached. Never throws.
int device_count();
// Why device_count() is 0, for messages ("dcpp was built without CUDA",
// "cudaGetDeviceCount: no CUDA-capable device is detected ...").
std::string unavailable_reason();
// "cuda:<index>".
std::string device_label(int index);
// Throws Error(kUnsupported) naming the device and `what` unless `index`
// is a device this process sees.
void require_device(int index, const std::string& what);

void* device_alloc(size_t nbytes, int device);  // cudaMalloc; nbytes 0 gives a unique pointer
void device_free(void* p, int device) noexcept;
void* pinned_alloc(size_t nbytes);  // cudaHostAlloc (page-locked, portable); page-aligned
void pinned_free(void* p) noexcept;

enum class Direction { kHostToDevice, kDeviceToHost, kDeviceToDevice };
const char* direction_name(Direction direction);  // "host to device", ...

// Synchronous copy; `device` is the device side (for device to device: the
// destination's, `src_device` the source's, a peer copy when they differ).
void copy(void* dst, const void* src, size_t nbytes, Direction direction, int device, int src_device = -1);
void memset_device(void* p, int value, size_t nbytes, int device);

// A stream of asynchronous copies. Owned by its creator.
using StreamHandle = void*;
StreamHandle stream_create(int device);
void stream_destroy(StreamHandle stream, int device) noexcept;
void copy_async(void* dst, const void* src, size_t nbytes, Direction direction, StreamHandle stream, int device);
void stream_synchronize(StreamHandle stream, int device);

}  // namespace dcpp::cuda
