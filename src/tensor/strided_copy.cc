#include "tensor/strided_copy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "dcpp/error.h"

namespace dcpp::detail {

namespace {

// ---- element types: the C++ storage type of each dtype and its conversions ----

struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
struct E4M3 { uint8_t bits; };
struct E5M2 { uint8_t bits; };
struct Bool { uint8_t bits; };

template <typename T>
constexpr bool kIsFloat = std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, F16> ||
                          std::is_same_v<T, BF16> || std::is_same_v<T, E4M3> || std::is_same_v<T, E5M2>;

template <typename T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, F16>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BF16>) return bfloat16_to_float(v.bits);
  else if constexpr (std::is_same_v<T, E4M3>) return float8_e4m3fn_to_float(v.bits);
  else if constexpr (std::is_same_v<T, E5M2>) return float8_e5m2_to_float(v.bits);
  else if constexpr (std::is_same_v<T, Bool>) return v.bits ? 1.0 : 0.0;
  else return static_cast<double>(v);
}

template <typename T>
int64_t to_int64(T v) {
  if constexpr (std::is_same_v<T, Bool>) return v.bits ? 1 : 0;
  else return static_cast<int64_t>(v);
}

// Float to integer as copy_ does it: truncate toward zero. C++ leaves an
// out-of-range conversion undefined, so NaN maps to 0 and the rest saturates
// to int64 before the (well-defined, wrapping) narrowing to the target.
int64_t truncate_to_int64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 0x1p63) return std::numeric_limits<int64_t>::max();
  if (v < -0x1p63) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

template <typename D>
D from_double(double v) {
  if constexpr (std::is_same_v<D, F16>) return F16{float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, BF16>) return BF16{float_to_bfloat16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, E4M3>) return E4M3{float_to_float8_e4m3fn(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, E5M2>) return E5M2{float_to_float8_e5m2(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, Bool>) return Bool{static_cast<uint8_t>(v != 0.0)};  // NaN != 0
  else if constexpr (std::is_floating_point_v<D>) return static_cast<D>(v);
  else return static_cast<D>(truncate_to_int64(v));
}

template <typename D>
D from_int64(int64_t v) {
  if constexpr (std::is_same_v<D, Bool>) return Bool{static_cast<uint8_t>(v != 0)};
  else if constexpr (kIsFloat<D>) return from_double<D>(static_cast<double>(v));
  else return static_cast<D>(v);  // wraps (two's complement, defined in C++20)
}

template <typename D, typename S>
D convert(S s) {
  if constexpr (kIsFloat<S>) {
    if constexpr (std::is_same_v<S, float> && std::is_same_v<D, F16>) return F16{float_to_half(s)};
    else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, BF16>) return BF16{float_to_bfloat16(s)};
    else return from_double<D>(to_double(s));
  } else {
    return from_int64<D>(to_int64(s));
  }
}

template <DType> struct CType;
template <> struct CType<DType::kFloat32> { using type = float; };
template <> struct CType<DType::kFloat64> { using type = double; };
template <> struct CType<DType::kFloat16> { using type = F16; };
template <> struct CType<DType::kBFloat16> { using type = BF16; };
template <> struct CType<DType::kInt8> { using type = int8_t; };
template <> struct CType<DType::kInt16> { using type = int16_t; };
template <> struct CType<DType::kInt32> { using type = int32_t; };
template <> struct CType<DType::kInt64> { using type = int64_t; };
template <> struct CType<DType::kUInt8> { using type = uint8_t; };
template <> struct CType<DType::kBool> { using type = Bool; };
template <> struct CType<DType::kFloat8E4M3FN> { using type = E4M3; };
template <> struct CType<DType::kFloat8E5M2> { using type = E5M2; };

// Calls f(T{}) with T the storage type of `dtype`.
template <typename F>
decltype(auto) dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(float{});
    case DType::kFloat64: return f(double{});
    case DType::kFloat16: return f(F16{});
    case DType::kBFloat16: return f(BF16{});
    case DType::kInt8: return f(int8_t{});
    case DType::kInt16: return f(int16_t{});
    case DType::kInt32: return f(int32_t{});
    case DType::kInt64: return f(int64_t{});
    case DType::kUInt8: return f(uint8_t{});
    case DType::kBool: return f(Bool{});
    case DType::kFloat8E4M3FN: return f(E4M3{});
    case DType::kFloat8E5M2: return f(E5M2{});
  }
  throw Error(ErrorCode::kInvalidArgument, "invalid dtype code " + std::to_string(static_cast<int>(dtype)));
}

// ---- inner kernels: one run of n elements, byte strides ----

using RunFn = void (*)(std::byte* dst, int64_t dst_stride, const std::byte* src, int64_t src_stride, int64_t n);

template <typename D, typename S>
void convert_run(std::byte* dst, int64_t ds, const std::byte* src, int64_t ss, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    S s;
    std::memcpy(&s, src + i * ss, sizeof(S));
    D d = convert<D>(s);
    std::memcpy(dst + i * ds, &d, sizeof(D));
  }
}

template <typename D>
constexpr std::array<RunFn, kNumDTypes> make_convert_row() {
  return {&convert_run<D, float>,  &convert_run<D, double>,  &convert_run<D, F16>,     &convert_run<D, BF16>,
          &convert_run<D, int8_t>, &convert_run<D, int16_t>, &convert_run<D, int32_t>, &convert_run<D, int64_t>,
          &convert_run<D, uint8_t>, &convert_run<D, Bool>,   &convert_run<D, E4M3>,    &convert_run<D, E5M2>};
}

// kConvert[dst][src], both indexed by the DType enumerator.
constexpr std::array<std::array<RunFn, kNumDTypes>, kNumDTypes> kConvert = {
    make_convert_row<float>(),   make_convert_row<double>(),  make_convert_row<F16>(),     make_convert_row<BF16>(),
    make_convert_row<int8_t>(),  make_convert_row<int16_t>(), make_convert_row<int32_t>(), make_convert_row<int64_t>(),
    make_convert_row<uint8_t>(), make_convert_row<Bool>(),    make_convert_row<E4M3>(),    make_convert_row<E5M2>()};

// Same-dtype run of elements of `kSize` bytes with arbitrary strides.
template <size_t kSize>
void move_run(std::byte* dst, int64_t ds, const std::byte* src, int64_t ss, int64_t n) {
  using Word = std::conditional_t<kSize == 1, uint8_t,
               std::conditional_t<kSize == 2, uint16_t, std::conditional_t<kSize == 4, uint32_t, uint64_t>>>;
  static_assert(sizeof(Word) == kSize);
  if (ss == 0) {  // broadcast one element (fill_)
    Word w;
    std::memcpy(&w, src, kSize);
    if (ds == static_cast<int64_t>(kSize)) {
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * kSize, &w, kSize);
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * ds, &w, kSize);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * ds, src + i * ss, kSize);
}

// A 2-D block whose destination is contiguous along the inner dim while the
// source is contiguous along the outer one (a transpose): copying in square
// tiles keeps both sides' cache lines hot instead of striding through the
// whole source for every destination row.
template <size_t kSize>
void transpose_block(std::byte* dst, int64_t dst_outer, const std::byte* src, int64_t src_inner, int64_t rows,
                     int64_t cols) {
  constexpr int64_t kTile = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    const int64_t i1 = std::min(rows, i0 + kTile);
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = std::min(cols, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i) {
        std::byte* d = dst + i * dst_outer;
        const std::byte* s = src + i * static_cast<int64_t>(kSize);
        for (int64_t j = j0; j < j1; ++j) std::memcpy(d + j * kSize, s + j * src_inner, kSize);
      }
    }
  }
}

RunFn move_run_for(size_t size) {
  switch (size) {
    case 1: return &move_run<1>;
    case 2: return &move_run<2>;
    case 4: return &move_run<4>;
    case 8: return &move_run<8>;
  }
  throw Error(ErrorCode::kInternal, "no copy kernel for element size " + std::to_string(size));
}

constexpr int kMaxDims = 64;

// Dimensions after dropping size-1 dims, ordering and coalescing.
struct Layout {
  int ndim = 0;
  int64_t size[kMaxDims];
  int64_t dst[kMaxDims];  // byte strides
  int64_t src[kMaxDims];
};

// Calls body(dst, src) for every index of the first `nouter` dims.
template <typename F>
void for_each_outer(const Layout& l, int nouter, std::byte* dst, const std::byte* src, F&& body) {
  int64_t idx[kMaxDims] = {};
  while (true) {
    body(dst, src);
    int d = nouter - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < l.size[d]) {
        dst += l.dst[d];
        src += l.src[d];
        break;
      }
      dst -= l.dst[d] * (l.size[d] - 1);
      src -= l.src[d] * (l.size[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace

void copy_strided(const Shape& sizes, DType dst_dtype, std::byte* dst, const int64_t* dst_strides,
                  DType src_dtype, const std::byte* src, const int64_t* src_strides) {
  const int64_t des = static_cast<int64_t>(dtype_size(dst_dtype));
  const int64_t ses = static_cast<int64_t>(dtype_size(src_dtype));
  if (sizes.size() > static_cast<size_t>(kMaxDims)) {
    throw Error(ErrorCode::kUnsupported, "copy of a tensor with " + std::to_string(sizes.size()) +
                                             " dims; at most " + std::to_string(kMaxDims) + " are supported");
  }
  Layout l;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) return;
    if (sizes[i] == 1) continue;
    l.size[l.ndim] = sizes[i];
    l.dst[l.ndim] = dst_strides[i] * des;
    l.src[l.ndim] = src_strides[i] * ses;
    ++l.ndim;
  }
  // Iterate in the destination's memory order (outermost = largest stride),
  // so writes stream; insertion sort is stable and ranks are small.
  for (int i = 1; i < l.ndim; ++i) {
    for (int j = i; j > 0 && std::llabs(l.dst[j - 1]) < std::llabs(l.dst[j]); --j) {
      std::swap(l.size[j - 1], l.size[j]);
      std::swap(l.dst[j - 1], l.dst[j]);
      std::swap(l.src[j - 1], l.src[j]);
    }
  }
  // Merge an outer dim into its inner neighbour when both sides step over
  // the inner one exactly: the pair then walks memory as one dimension.
  if (l.ndim > 0) {
    int out = 0;
    for (int i = 1; i < l.ndim; ++i) {
      if (l.dst[out] == l.dst[i] * l.size[i] && l.src[out] == l.src[i] * l.size[i]) {
        l.size[out] *= l.size[i];
        l.dst[out] = l.dst[i];
        l.src[out] = l.src[i];
      } else {
        ++out;
        l.size[out] = l.size[i];
        l.dst[out] = l.dst[i];
        l.src[out] = l.src[i];
      }
    }
    l.ndim = out + 1;
  }
  if (l.ndim == 0) {  // a single element
    l.ndim = 1;
    l.size[0] = 1;
    l.dst[0] = des;
    l.src[0] = ses;
  }
  const int inner = l.ndim - 1;
  const int64_t n = l.size[inner];
  const int64_t ds = l.dst[inner];
  const int64_t ss = l.src[inner];

  if (dst_dtype != src_dtype) {
    RunFn run = kConvert[static_cast<int>(dst_dtype)][static_cast<int>(src_dtype)];
    for_each_outer(l, inner, dst, src, [&](std::byte* d, const std::byte* s) { run(d, ds, s, ss, n); });
    return;
  }
  if (ds == des && ss == ses) {
    // The fast path: each contiguous run is a single memcpy (the whole
    // tensor when both sides are contiguous).
    const size_t run_bytes = static_cast<size_t>(n * des);
    for_each_outer(l, inner, dst, src, [&](std::byte* d, const std::byte* s) { std::memcpy(d, s, run_bytes); });
    return;
  }
  if (l.ndim >= 2 && ds == des && l.src[inner - 1] == ses && n >= 8 && l.size[inner - 1] >= 8) {
    const int64_t rows = l.size[inner - 1];
    const int64_t dst_outer = l.dst[inner - 1];
    auto block = [&](auto kernel) {
      for_each_outer(l, inner - 1, dst, src,
                     [&](std::byte* d, const std::byte* s) { kernel(d, dst_outer, s, ss, rows, n); });
    };
    switch (des) {
      case 1: block(&transpose_block<1>); return;
      case 2: block(&transpose_block<2>); return;
      case 4: block(&transpose_block<4>); return;
      case 8: block(&transpose_block<8>); return;
    }
  }
  RunFn run = move_run_for(static_cast<size_t>(des));
  for_each_outer(l, inner, dst, src, [&](std::byte* d, const std::byte* s) { run(d, ds, s, ss, n); });
}

double load_double(DType dtype, const std::byte* p) {
  return dispatch(dtype, [&](auto tag) -> double {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, p, sizeof(T));
    return to_double(v);
  });
}

void store_double(DType dtype, std::byte* p, double value) {
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    T v = from_double<T>(value);
    std::memcpy(p, &v, sizeof(T));
  });
}

}  // namespace dcpp::detail
