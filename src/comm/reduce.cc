#include "comm/reduce.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dcpp/error.h"

namespace dcpp::comm_detail {

namespace {

// Elements are processed in blocks so 16-bit floats can accumulate in a
// float32 buffer on the stack without allocating.
constexpr size_t kBlock = 512;

template <typename T>
T combine(T a, T b, ReduceOp op) {
  if constexpr (std::is_floating_point_v<T>) {
    // NaN propagates through max and min (as torch.maximum does); `a != a`
    // keeps a NaN accumulator, and a NaN `b` fails both comparisons.
    switch (op) {
      case ReduceOp::kSum: return a + b;
      case ReduceOp::kMax: return (a != a || a > b) ? a : b;
      case ReduceOp::kMin: return (a != a || a < b) ? a : b;
    }
  } else {
    switch (op) {
      case ReduceOp::kSum: {
        // Integer sums wrap (two's complement) instead of overflowing into UB.
        using U = std::make_unsigned_t<T>;
        return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
      }
      case ReduceOp::kMax: return a > b ? a : b;
      case ReduceOp::kMin: return a < b ? a : b;
    }
  }
  return a;
}

// Plain types: accumulate in T itself.
template <typename T>
void reduce_plain(const void* const* inputs, int n, void* out, size_t count, ReduceOp op) {
  T acc[kBlock];
  for (size_t base = 0; base < count; base += kBlock) {
    const size_t m = std::min(kBlock, count - base);
    std::memcpy(acc, static_cast<const T*>(inputs[0]) + base, m * sizeof(T));
    for (int r = 1; r < n; ++r) {
      T tmp[kBlock];
      std::memcpy(tmp, static_cast<const T*>(inputs[r]) + base, m * sizeof(T));
      for (size_t i = 0; i < m; ++i) acc[i] = combine(acc[i], tmp[i], op);
    }
    std::memcpy(static_cast<T*>(out) + base, acc, m * sizeof(T));
  }
}

// 16-bit floats: widen, accumulate in float32, round once.
template <float (*Widen)(uint16_t), uint16_t (*Narrow)(float)>
void reduce_half(const void* const* inputs, int n, void* out, size_t count, ReduceOp op) {
  float acc[kBlock];
  uint16_t tmp[kBlock];
  for (size_t base = 0; base < count; base += kBlock) {
    const size_t m = std::min(kBlock, count - base);
    std::memcpy(tmp, static_cast<const uint16_t*>(inputs[0]) + base, m * sizeof(uint16_t));
    for (size_t i = 0; i < m; ++i) acc[i] = Widen(tmp[i]);
    for (int r = 1; r < n; ++r) {
      std::memcpy(tmp, static_cast<const uint16_t*>(inputs[r]) + base, m * sizeof(uint16_t));
      for (size_t i = 0; i < m; ++i) acc[i] = combine(acc[i], Widen(tmp[i]), op);
    }
    for (size_t i = 0; i < m; ++i) tmp[i] = Narrow(acc[i]);
    std::memcpy(static_cast<uint16_t*>(out) + base, tmp, m * sizeof(uint16_t));
  }
}

}  // namespace

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "unknown";
}

void check_reducible(DType dtype, ReduceOp op, const char* what) {
  if (op != ReduceOp::kSum && op != ReduceOp::kMax && op != ReduceOp::kMin) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": invalid reduce op " + std::to_string(static_cast<int>(op)));
  }
  switch (dtype) {
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
    case DType::kUInt8:
      return;
    case DType::kBool:
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E5M2:
      break;
  }
  throw Error(ErrorCode::kUnsupported, std::string(what) + ": cannot reduce dtype " +
                                           std::string(dtype_name(dtype)) +
                                           " (floating dtypes float32/float64/float16/bfloat16 and integer "
                                           "dtypes only)");
}

void reduce_in_order(const void* const* inputs, int n, void* out, size_t count, DType dtype, ReduceOp op) {
  if (n <= 0 || count == 0) return;
  switch (dtype) {
    case DType::kFloat32: return reduce_plain<float>(inputs, n, out, count, op);
    case DType::kFloat64: return reduce_plain<double>(inputs, n, out, count, op);
    case DType::kFloat16: return reduce_half<half_to_float, float_to_half>(inputs, n, out, count, op);
    case DType::kBFloat16: return reduce_half<bfloat16_to_float, float_to_bfloat16>(inputs, n, out, count, op);
    case DType::kInt8: return reduce_plain<int8_t>(inputs, n, out, count, op);
    case DType::kInt16: return reduce_plain<int16_t>(inputs, n, out, count, op);
    case DType::kInt32: return reduce_plain<int32_t>(inputs, n, out, count, op);
    case DType::kInt64: return reduce_plain<int64_t>(inputs, n, out, count, op);
    case DType::kUInt8: return reduce_plain<uint8_t>(inputs, n, out, count, op);
    default: check_reducible(dtype, op, "reduce");
  }
}

std::string describe_ranks(const std::vector<int>& ranks) {
  if (ranks.empty()) return "no rank";
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) s += (i + 1 == ranks.size()) ? " and " : ", ";
    s += std::to_string(ranks[i]);
  }
  return s;
}

std::string describe_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms >= 60000 && ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace dcpp::comm_detail
