#include "dcpp/dtype.h"

#include <bit>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <cmath>
#include <cstring>

#include "dcpp/error.h"
#include "tensor/cuda/runtime.h"

namespace dcpp {

namespace {

struct DTypeInfo {
  std::string_view name;
  size_t size;
  bool floating;
  bool integral;
};

// Indexed by the DType enumerator value.
constexpr DTypeInfo kDTypeInfo[kNumDTypes] = {
    {"float32", 4, true, false},       {"float64", 8, true, false},      {"float16", 2, true, false},
    {"bfloat16", 2, true, false},      {"int8", 1, false, true},         {"int16", 2, false, true},
    {"int32", 4, false, true},         {"int64", 8, false, true},        {"uint8", 1, false, true},
    {"bool", 1, false, false},         {"float8_e4m3fn", 1, true, false}, {"float8_e5m2", 1, true, false},
};

const DTypeInfo& info(DType dtype) {
  auto i = static_cast<unsigned>(dtype);
  if (i >= static_cast<unsigned>(kNumDTypes)) {
    throw Error(ErrorCode::kInvalidArgument, "invalid dtype code " + std::to_string(i));
  }
  return kDTypeInfo[i];
}

// A small IEEE-like binary format: 1 sign bit, kExpBits exponent bits with
// the usual bias, kManBits mantissa bits, subnormals. `kFiniteOnly` formats
// (float8_e4m3fn) have no infinity and a single NaN mantissa (all ones) in
// the top exponent; the rest of that binade holds finite numbers.
// Narrowing a NaN gives one canonical NaN (sign kept, mantissa kNaNMantissa),
// bit for bit what PyTorch's scalar conversions (c10) produce; widening keeps
// the payload.
template <int kExpBits, int kManBits, bool kFiniteOnly, uint32_t kNaNMantissa>
struct MiniFloat {
  static constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  static constexpr uint32_t kExpMask = (1u << kExpBits) - 1;
  static constexpr uint32_t kManMask = (1u << kManBits) - 1;
  static constexpr uint32_t kSignBit = 1u << (kExpBits + kManBits);
  // Encoding of the largest finite magnitude and of the canonical NaN.
  static constexpr uint32_t kMaxFinite =
      kFiniteOnly ? ((kExpMask << kManBits) | (kManMask - 1)) : (((kExpMask - 1) << kManBits) | kManMask);
  static constexpr uint32_t kInf = kExpMask << kManBits;  // only meaningful when !kFiniteOnly

  static float widen(uint32_t v) {
    const uint32_t sign = (v & kSignBit) ? 0x80000000u : 0u;
    const uint32_t exp = (v >> kManBits) & kExpMask;
    const uint32_t man = v & kManMask;
    uint32_t bits;
    if (exp == 0) {
      // Subnormal (or zero): man * 2^(1 - bias - kManBits), exact in float.
      float mag = std::ldexp(static_cast<float>(man), 1 - kBias - kManBits);
      return sign ? -mag : mag;
    } else if (exp == kExpMask && (!kFiniteOnly || man == kManMask)) {
      // Inf or NaN; a NaN keeps its payload in the top mantissa bits.
      bits = sign | 0x7F800000u | (kFiniteOnly ? 0x00400000u : (man << (23 - kManBits)));
    } else {
      bits = sign | ((exp - kBias + 127) << 23) | (man << (23 - kManBits));
    }
    return std::bit_cast<float>(bits);
  }

  static uint32_t narrow(float f) {
    const uint32_t fbits = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (fbits & 0x80000000u) ? kSignBit : 0u;
    const uint32_t abs = fbits & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return sign | (kExpMask << kManBits) | kNaNMantissa;
    if (abs == 0x7F800000u) {  // inf
      return kFiniteOnly ? (sign | (kExpMask << kManBits) | kManMask) : (sign | kInf);
    }
    // Float subnormals have exponent -126 without the implicit bit; they lie
    // far below every target's smallest subnormal and round to zero.
    const bool float_normal = (abs >> 23) != 0;
    const int exp = float_normal ? static_cast<int>(abs >> 23) - 127 : -126;
    constexpr int kMinExp = 1 - kBias;                  // exponent of the smallest normal
    uint32_t enc;
    if (exp < kMinExp) {
      // Target subnormal: quantum 2^(kMinExp - kManBits). The float's full
      // significand (implicit bit included) is sig * 2^(exp - 23).
      const uint64_t sig = (abs & 0x7FFFFFu) | (float_normal ? 0x800000u : 0u);
      const int shift = (kMinExp - kManBits) - (exp - 23);
      enc = static_cast<uint32_t>(round_shift(sig, shift));  // a carry lands in the exponent field
    } else if (exp > static_cast<int>(kExpMask) - kBias) {
      return overflow(sign);
    } else {
      // Rebias while keeping the 23-bit mantissa, then drop bits with
      // round-to-nearest-even; a carry out of the mantissa bumps the exponent.
      const uint64_t wide = (static_cast<uint64_t>(exp + kBias) << 23) | (abs & 0x7FFFFFu);
      enc = static_cast<uint32_t>(round_shift(wide, 23 - kManBits));
    }
    if (enc > kMaxFinite) return overflow(sign);
    return sign | enc;
  }

 private:
  static uint32_t overflow(uint32_t sign) {
    return kFiniteOnly ? (sign | (kExpMask << kManBits) | kManMask) : (sign | kInf);
  }
  // x / 2^shift rounded to nearest, ties to even.
  static uint64_t round_shift(uint64_t x, int shift) {
    if (shift <= 0) return x << -shift;
    if (shift >= 64) return 0;
    const uint64_t kept = x >> shift;
    const uint64_t rem = x & ((uint64_t{1} << shift) - 1);
    const uint64_t half = uint64_t{1} << (shift - 1);
    if (rem > half || (rem == half && (kept & 1))) return kept + 1;
    return kept;
  }
};

using Half = MiniFloat<5, 10, false, 0x200>;  // NaN 0x7E00
using E4M3FN = MiniFloat<4, 3, true, 0x7>;    // NaN 0x7F
using E5M2 = MiniFloat<5, 2, false, 0x3>;     // NaN 0x7F

}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

DType dtype_from_name(std::string_view name) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (kDTypeInfo[i].name == name) return static_cast<DType>(i);
  }
  // PyTorch's aliases, so that names written by torch round-trip.
  if (name == "float" || name == "torch.float32") return DType::kFloat32;
  if (name == "double") return DType::kFloat64;
  if (name == "half") return DType::kFloat16;
  if (name == "long") return DType::kInt64;
  if (name == "int") return DType::kInt32;
  if (name == "short") return DType::kInt16;
  if (name.starts_with("torch.")) return dtype_from_name(name.substr(6));
  throw Error(ErrorCode::kInvalidArgument, "unknown dtype name '" + std::string(name) + "'");
}

bool is_floating_point(DType dtype) { return info(dtype).floating; }
bool is_integral(DType dtype) { return info(dtype).integral; }

std::string_view device_name(Device device) {
  switch (device) {
    case Device::kCpu: return "cpu";
    case Device::kMeta: return "meta";
    case Device::kCuda: return "cuda";
  }
  throw Error(ErrorCode::kInvalidArgument, "invalid device code " + std::to_string(static_cast<int>(device)));
}

std::string device_string(DeviceSpec device) {
  std::string s(device_name(device.type));
  if (device.type == Device::kCuda) s += ":" + std::to_string(device.index);
  return s;
}

DeviceSpec parse_device(std::string_view name) {
  if (name == "cpu") return Device::kCpu;
  if (name == "meta") return Device::kMeta;
  if (name == "cuda") return Device::kCuda;
  if (name.starts_with("cuda:")) {
    const std::string_view digits = name.substr(5);
    int index = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() && index >= 0) {
      return DeviceSpec(Device::kCuda, index);
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown device '" + std::string(name) + "' (expected cpu, meta, cuda or cuda:N)");
}

bool built_with_cuda() { return cuda::built_with_cuda(); }
int cuda_device_count() { return cuda::device_count(); }

Device device_from_name(std::string_view name) {
  if (name == "gpu") name = "cuda";
  const DeviceSpec spec = parse_device(name);
  if (spec.type != Device::kCuda) return spec.type;
  if (cuda::device_count() > 0) return Device::kCuda;
  static std::once_flag reported;
  std::call_once(reported, [] {
    std::fprintf(stderr, "dcpp: device \"cuda\" requested but %s: computing on the host (cpu)\n",
                 cuda::unavailable_reason().c_str());
  });
  return Device::kCpu;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float half_to_float(uint16_t h) { return Half::widen(h); }
uint16_t float_to_half(float f) { return static_cast<uint16_t>(Half::narrow(f)); }

float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bfloat16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  // NaN: PyTorch's canonical bfloat16 NaN (positive, quiet).
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  // Round to nearest even on the 16 dropped bits; overflow carries into inf.
  const uint32_t lsb = (bits >> 16) & 1u;
  bits += 0x7FFFu + lsb;
  return static_cast<uint16_t>(bits >> 16);
}

float float8_e4m3fn_to_float(uint8_t v) { return E4M3FN::widen(v); }
uint8_t float_to_float8_e4m3fn(float f) { return static_cast<uint8_t>(E4M3FN::narrow(f)); }
float float8_e5m2_to_float(uint8_t v) { return E5M2::widen(v); }
uint8_t float_to_float8_e5m2(float f) { return static_cast<uint8_t>(E5M2::narrow(f)); }

}  // namespace dcpp
