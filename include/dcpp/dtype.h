// Element types and devices of dcpp tensors, and the scalar conversions
// between them (16-bit and 8-bit floats are storage types: arithmetic widens
// to float32, narrowing rounds to nearest even, widening is exact).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dcpp {

enum class DType : uint8_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kFloat16 = 2,
  kBFloat16 = 3,
  kInt8 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kUInt8 = 8,
  kBool = 9,
  kFloat8E4M3FN = 10,
  kFloat8E5M2 = 11,
};
inline constexpr int kNumDTypes = 12;

// Bytes per element.
size_t dtype_size(DType dtype);
// PyTorch's spelling without the "torch." prefix: "float32", "bfloat16", "float8_e4m3fn", ...
std::string_view dtype_name(DType dtype);
// Inverse of dtype_name; throws Error(kInvalidArgument) for an unknown name.
DType dtype_from_name(std::string_view name);
bool is_floating_point(DType dtype);
bool is_integral(DType dtype);  // ints and uint8; not bool

enum class Device : uint8_t {
  kCpu = 0,
  kMeta = 1,  // shape and dtype only; touching data is an error
  kCuda = 2,  // memory of a GPU (which one: DeviceSpec::index); needs a CUDA build and a GPU
};
std::string_view device_name(Device device);  // "cpu", "meta", "cuda"

// A device and its index, PyTorch's torch.device: cuda:1 is {kCuda, 1}.
// The index is 0 for cpu and meta. Converts from a bare Device (index 0).
struct DeviceSpec {
  Device type = Device::kCpu;
  int index = 0;
  DeviceSpec() = default;
  DeviceSpec(Device t, int i = 0) : type(t), index(i) {}  // NOLINT: implicit on purpose
  bool operator==(const DeviceSpec&) const = default;
};
// "cpu", "meta", "cuda:1".
std::string device_string(DeviceSpec device);
// "cpu", "meta", "cuda" (cuda:0), "cuda:N": a pure parse, no device needed;
// creating a tensor on a CUDA device that is absent fails there, naming it.
// Throws Error(kInvalidArgument) for anything else.
DeviceSpec parse_device(std::string_view name);

// CUDA as seen by this process: whether dcpp was built with it, and how many
// GPUs it sees (0 without CUDA or without a GPU).
bool built_with_cuda();
int cuda_device_count();

// The device a mesh or module asked for by name computes on (init_device_mesh,
// PyTorch's device_type strings). "cpu" and "meta" as written; "cuda",
// "cuda:N" and "gpu" give kCuda when a GPU is present, and otherwise the
// host (kCpu), as dcpp did before it had CUDA devices: that fallback is
// reported once per process on stderr. Use parse_device for an exact device.
Device device_from_name(std::string_view name);

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& shape);  // "[2, 3]"
int64_t shape_numel(const Shape& shape);

// Scalar conversions (round to nearest even, NaN preserved, overflow to inf
// for f16/bf16/e5m2 and to NaN for e4m3fn, which has no infinity).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t b);
uint16_t float_to_bfloat16(float f);
float float8_e4m3fn_to_float(uint8_t v);
uint8_t float_to_float8_e4m3fn(float f);
float float8_e5m2_to_float(uint8_t v);
uint8_t float_to_float8_e5m2(float f);

}  // namespace dcpp
