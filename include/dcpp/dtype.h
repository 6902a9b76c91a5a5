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
};
std::string_view device_name(Device device);
// "cpu" or "meta" (also "cuda"/"gpu" map to cpu: dcpp computes on the host).
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
