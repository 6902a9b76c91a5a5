// Scalar dtype conversions against literal bit patterns (IEEE 754 binary16,
// bfloat16, OCP FP8 E4M3FN/E5M2 as PyTorch implements them), exhaustive
// round trips, tie cases derived from the neighbouring representable values,
// and, where the CPU has F16C, the hardware's own float->half conversion.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "dcpp/dtype.h"
#include "dcpp/error.h"
#include "support/distributed.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dcpp {
namespace {

float bits_to_float(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t float_bits(float f) { return std::bit_cast<uint32_t>(f); }
const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(tensor_DType, SizesAndNames) {
  struct Row {
    DType dtype;
    size_t size;
    const char* name;
    bool floating;
    bool integral;
  };
  const Row rows[] = {
      {DType::kFloat32, 4, "float32", true, false},        {DType::kFloat64, 8, "float64", true, false},
      {DType::kFloat16, 2, "float16", true, false},        {DType::kBFloat16, 2, "bfloat16", true, false},
      {DType::kInt8, 1, "int8", false, true},              {DType::kInt16, 2, "int16", false, true},
      {DType::kInt32, 4, "int32", false, true},            {DType::kInt64, 8, "int64", false, true},
      {DType::kUInt8, 1, "uint8", false, true},            {DType::kBool, 1, "bool", false, false},
      {DType::kFloat8E4M3FN, 1, "float8_e4m3fn", true, false}, {DType::kFloat8E5M2, 1, "float8_e5m2", true, false},
  };
  ASSERT_EQ(std::size(rows), static_cast<size_t>(kNumDTypes));
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(dtype_size(r.dtype), r.size);
    EXPECT_EQ(dtype_name(r.dtype), r.name);
    EXPECT_EQ(dtype_from_name(r.name), r.dtype);
    EXPECT_EQ(is_floating_point(r.dtype), r.floating);
    EXPECT_EQ(is_integral(r.dtype), r.integral);
  }
  EXPECT_EQ(dtype_from_name("torch.bfloat16"), DType::kBFloat16);
  try {
    dtype_from_name("float128");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("float128"), std::string::npos);
  }
}

TEST(tensor_DType, DevicesAndShapes) {
  EXPECT_EQ(device_name(Device::kCpu), "cpu");
  EXPECT_EQ(device_name(Device::kMeta), "meta");
  EXPECT_EQ(device_from_name("meta"), Device::kMeta);
  // "cuda" computes on a GPU when there is one, on the host otherwise.
  EXPECT_EQ(device_from_name("cuda"), cuda_device_count() > 0 ? Device::kCuda : Device::kCpu);
  EXPECT_THROW(device_from_name("tpu"), Error);
  EXPECT_EQ(shape_to_string({2, 3}), "[2, 3]");
  EXPECT_EQ(shape_to_string({}), "[]");
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({4, 0, 3}), 0);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
}

// ---- float16 ----

TEST(tensor_Float16, LiteralPatterns) {
  struct Row {
    float f;
    uint16_t h;
  };
  const Row rows[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3C00},
      {-2.0f, 0xC000},
      {0.5f, 0x3800},
      {65504.0f, 0x7BFF},                 // largest finite
      {65519.0f, 0x7BFF},                 // just below the midpoint to 65536
      {65520.0f, 0x7C00},                 // the midpoint rounds to even: inf
      {1e6f, 0x7C00},                     // overflow -> inf
      {-1e6f, 0xFC00},
      {kInf, 0x7C00},
      {-kInf, 0xFC00},
      {0x1p-14f, 0x0400},                 // smallest normal
      {0x1p-24f, 0x0001},                 // smallest subnormal
      {0x1p-25f, 0x0000},                 // half of it: tie to even (0)
      {0x1.8p-24f, 0x0002},               // 1.5 quanta: tie to even (2)
      {0x1.8p-25f, 0x0001},               // 0.75 quanta: rounds up
      {0x1p-26f, 0x0000},
      {0x1.ff8p-15f, 0x03FF},             // largest subnormal
      {0x1.ffcp-15f, 0x0400},             // + half a quantum: tie, rounds to the (even) smallest normal
      {1.0f + 0x1p-11f, 0x3C00},          // tie between 0x3C00 and 0x3C01 -> even
      {1.0f + 0x1.8p-10f, 0x3C02},        // tie between 0x3C01 and 0x3C02 -> even
      {1.0f + 0x1p-10f, 0x3C01},
      {0.1f, 0x2E66},
      {1.0f / 3.0f, 0x3555},
      {3.140625f, 0x4248},
      {1e-40f, 0x0000},                   // a float subnormal
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.f);
    EXPECT_EQ(float_to_half(r.f), r.h) << std::hex << float_to_half(r.f);
  }
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), 0x1p-24f);
  EXPECT_EQ(half_to_float(0x03FF), 0x1.ff8p-15f);
  EXPECT_EQ(half_to_float(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(half_to_float(0x7C00), kInf);
  EXPECT_EQ(half_to_float(0xFC00), -kInf);
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7C01)));
  // NaN narrows to PyTorch's canonical quiet NaN, sign kept.
  EXPECT_EQ(float_to_half(kNaN), 0x7E00);
  EXPECT_EQ(float_to_half(-kNaN), 0xFE00);
  EXPECT_EQ(float_to_half(bits_to_float(0x7F800001)), 0x7E00);  // signalling, low payload
}

// ---- bfloat16 ----

TEST(tensor_BFloat16, LiteralPatterns) {
  struct Row {
    uint32_t f;  // float bits
    uint16_t b;
  };
  const Row rows[] = {
      {0x3F800000, 0x3F80},  // 1.0
      {0xBF800000, 0xBF80},  // -1.0
      {0x3EAAAAAB, 0x3EAB},  // 1/3: low half 0xAAAB > 0x8000 rounds up
      {0x3F808000, 0x3F80},  // tie, 0x3F80 even: down
      {0x3F818000, 0x3F82},  // tie, 0x3F81 odd: up
      {0x3F807FFF, 0x3F80},
      {0x3F808001, 0x3F81},
      {0x7F7FFFFF, 0x7F80},  // FLT_MAX overflows to inf
      {0x7F7F7FFF, 0x7F7F},  // largest value that stays finite
      {0x7F800000, 0x7F80},  // inf
      {0xFF800000, 0xFF80},  // -inf
      {0x00000001, 0x0000},  // smallest float subnormal
      {0x00008000, 0x0000},  // tie to even (0)
      {0x00018000, 0x0002},  // tie to even (2)
      {0x80000000, 0x8000},  // -0
      {0x3DCCCCCD, 0x3DCD},  // 0.1
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(::testing::Message() << std::hex << r.f);
    EXPECT_EQ(float_to_bfloat16(bits_to_float(r.f)), r.b) << std::hex << float_to_bfloat16(bits_to_float(r.f));
  }
  EXPECT_EQ(float_to_bfloat16(1.0f / 3.0f), 0x3EAB);
  EXPECT_EQ(bfloat16_to_float(0x3EAB), 0.333984375f);
  EXPECT_EQ(float_to_bfloat16(kNaN), 0x7FC0);
  EXPECT_EQ(float_to_bfloat16(-kNaN), 0x7FC0);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(0x7FC0)));
  EXPECT_EQ(bfloat16_to_float(0x0001), 0x1p-133f);  // subnormal
}

// ---- float8 ----

TEST(tensor_Float8E4M3FN, LiteralPatterns) {
  struct Row {
    float f;
    uint8_t v;
  };
  const Row rows[] = {
      {0.0f, 0x00},    {-0.0f, 0x80},      {1.0f, 0x38},       {-1.0f, 0xB8},     {0.5f, 0x30},
      {1.125f, 0x39},  {1.0625f, 0x38},    {1.1875f, 0x3A},    {448.0f, 0x7E},    {-448.0f, 0xFE},
      {464.0f, 0x7E},  // midpoint between 448 and the NaN slot rounds to even (448)
      {465.0f, 0x7F},  // beyond it: NaN (no infinity; PyTorch does not saturate)
      {480.0f, 0x7F},  {1e9f, 0x7F},       {-1e9f, 0xFF},      {kInf, 0x7F},      {-kInf, 0xFF},
      {kNaN, 0x7F},    {0x1p-6f, 0x08},    // smallest normal
      {0x1p-9f, 0x01},                     // smallest subnormal
      {0x1p-10f, 0x00},                    // tie to even (0)
      {0x1.8p-9f, 0x02},                   // tie to even (2)
      {0x1.4p-9f, 0x01},                   {0.875f * 0x1p-6f, 0x07},  // largest subnormal
      {240.0f, 0x77},  {256.0f, 0x78},     {-3.0f, 0xC4},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.f);
    EXPECT_EQ(float_to_float8_e4m3fn(r.f), r.v) << std::hex << int(float_to_float8_e4m3fn(r.f));
  }
  EXPECT_EQ(float8_e4m3fn_to_float(0x7E), 448.0f);
  EXPECT_EQ(float8_e4m3fn_to_float(0x78), 256.0f);  // the top binade is finite (no inf)
  EXPECT_EQ(float8_e4m3fn_to_float(0x7C), 384.0f);
  EXPECT_TRUE(std::isnan(float8_e4m3fn_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(float8_e4m3fn_to_float(0xFF)));
  EXPECT_EQ(float8_e4m3fn_to_float(0x01), 0x1p-9f);
  EXPECT_EQ(float8_e4m3fn_to_float(0x38), 1.0f);
  EXPECT_EQ(float8_e4m3fn_to_float(0xB9), -1.125f);
}

TEST(tensor_Float8E5M2, LiteralPatterns) {
  struct Row {
    float f;
    uint8_t v;
  };
  const Row rows[] = {
      {0.0f, 0x00},     {-0.0f, 0x80},    {1.0f, 0x3C},     {-1.0f, 0xBC},
      {1.25f, 0x3D},    {1.5f, 0x3E},     {1.125f, 0x3C},   // tie -> even (1.0)
      {1.375f, 0x3E},   // tie -> even (1.5)
      {57344.0f, 0x7B}, // largest finite
      {61439.0f, 0x7B}, {61440.0f, 0x7C}, // midpoint to 65536 rounds to even: inf
      {1e9f, 0x7C},     {-1e9f, 0xFC},    {kInf, 0x7C},     {-kInf, 0xFC},
      {kNaN, 0x7F},     {-kNaN, 0xFF},    {0x1p-14f, 0x04}, // smallest normal
      {0x1p-16f, 0x01}, // smallest subnormal
      {0x1p-17f, 0x00}, // tie to even
      {0x1.8p-16f, 0x02},
      {0.1f, 0x2E},     {-3.0f, 0xC2},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.f);
    EXPECT_EQ(float_to_float8_e5m2(r.f), r.v) << std::hex << int(float_to_float8_e5m2(r.f));
  }
  EXPECT_EQ(float8_e5m2_to_float(0x7B), 57344.0f);
  EXPECT_EQ(float8_e5m2_to_float(0x7C), kInf);
  EXPECT_EQ(float8_e5m2_to_float(0xFC), -kInf);
  EXPECT_TRUE(std::isnan(float8_e5m2_to_float(0x7D)));
  EXPECT_TRUE(std::isnan(float8_e5m2_to_float(0x7F)));
  EXPECT_EQ(float8_e5m2_to_float(0x01), 0x1p-16f);
  EXPECT_EQ(float8_e5m2_to_float(0x3E), 1.5f);
}

// ---- exhaustive properties of every pattern ----

struct Format {
  const char* name;
  int bits;
  float (*widen)(uint32_t);
  uint32_t (*narrow)(float);
  bool (*is_nan)(uint32_t);
};

const Format kFormats[] = {
    {"float16", 16, [](uint32_t v) { return half_to_float(static_cast<uint16_t>(v)); },
     [](float f) -> uint32_t { return float_to_half(f); }, [](uint32_t v) { return (v & 0x7FFF) > 0x7C00; }},
    {"bfloat16", 16, [](uint32_t v) { return bfloat16_to_float(static_cast<uint16_t>(v)); },
     [](float f) -> uint32_t { return float_to_bfloat16(f); }, [](uint32_t v) { return (v & 0x7FFF) > 0x7F80; }},
    {"float8_e4m3fn", 8, [](uint32_t v) { return float8_e4m3fn_to_float(static_cast<uint8_t>(v)); },
     [](float f) -> uint32_t { return float_to_float8_e4m3fn(f); }, [](uint32_t v) { return (v & 0x7F) == 0x7F; }},
    {"float8_e5m2", 8, [](uint32_t v) { return float8_e5m2_to_float(static_cast<uint8_t>(v)); },
     [](float f) -> uint32_t { return float_to_float8_e5m2(f); }, [](uint32_t v) { return (v & 0x7F) > 0x7C; }},
};

TEST(tensor_DTypeConversion, ExhaustiveRoundTrip) {
  for (const Format& fmt : kFormats) {
    SCOPED_TRACE(fmt.name);
    int failures = 0;
    for (uint32_t v = 0; v < (1u << fmt.bits) && failures < 10; ++v) {
      const float f = fmt.widen(v);
      if (fmt.is_nan(v)) {
        EXPECT_TRUE(std::isnan(f)) << std::hex << v;
        EXPECT_TRUE(fmt.is_nan(fmt.narrow(f))) << std::hex << v;
        continue;
      }
      const uint32_t back = fmt.narrow(f);
      if (back != v) {
        ++failures;
        ADD_FAILURE() << "pattern 0x" << std::hex << v << " widens to " << f << " and narrows to 0x" << back;
      }
    }
  }
}

// Widening is monotonic over the positive patterns (a literal property of
// the encodings), and each midpoint between neighbours rounds to the
// neighbour with an even pattern; one float ulp off the midpoint rounds to
// the nearer neighbour.
TEST(tensor_DTypeConversion, ExhaustiveMidpointsRoundToEven) {
  for (const Format& fmt : kFormats) {
    SCOPED_TRACE(fmt.name);
    const uint32_t sign_bit = 1u << (fmt.bits - 1);
    int failures = 0;
    for (uint32_t v = 0; v + 1 < sign_bit && failures < 10; ++v) {
      const uint32_t w = v + 1;
      if (fmt.is_nan(v) || fmt.is_nan(w)) continue;
      const float a = fmt.widen(v);
      const float b = fmt.widen(w);
      if (std::isinf(b)) continue;  // overflow rounding is in the literal tables
      ASSERT_LT(a, b) << std::hex << v;
      const float mid = a + (b - a) / 2;  // exact: few significant bits
      ASSERT_TRUE(mid > a && mid < b);
      const uint32_t even = (v % 2 == 0) ? v : w;
      for (uint32_t sign : {0u, sign_bit}) {
        const float s = sign ? -1.0f : 1.0f;
        if (fmt.narrow(s * mid) != (even | sign) || fmt.narrow(s * std::nextafter(mid, 0.0f)) != (v | sign) ||
            fmt.narrow(s * std::nextafter(mid, kInf)) != (w | sign)) {
          ++failures;
          ADD_FAILURE() << "between 0x" << std::hex << v << " and 0x" << w << " sign " << sign << ": mid -> 0x"
                        << fmt.narrow(s * mid) << ", below -> 0x" << fmt.narrow(s * std::nextafter(mid, 0.0f))
                        << ", above -> 0x" << fmt.narrow(s * std::nextafter(mid, kInf));
        }
      }
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t hardware_float_to_half(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hardware_half_to_float(uint16_t h) { return _cvtsh_ss(h); }

TEST(tensor_Float16, MatchesF16CHardware) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "CPU lacks F16C";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float hw = hardware_half_to_float(static_cast<uint16_t>(h));
    const float sw = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {
      ASSERT_TRUE(std::isnan(sw)) << std::hex << h;
    } else {
      ASSERT_EQ(float_bits(hw), float_bits(sw)) << std::hex << h;
    }
  }
  std::mt19937_64 rng(dcpp::testing::test_seed("Float16.MatchesF16CHardware"));
  for (int i = 0; i < 2'000'000; ++i) {
    // Random bit patterns concentrated around the half range.
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 2) bits = (bits & 0x80FFFFFFu) | ((0x60u + (bits >> 24) % 0x30u) << 23);
    const float f = bits_to_float(bits);
    if (std::isnan(f)) continue;  // hardware keeps payloads; PyTorch canonicalises
    ASSERT_EQ(float_to_half(f), hardware_float_to_half(f)) << std::hex << bits;
  }
}
#endif

}  // namespace
}  // namespace dcpp
