// Element-wise and matrix kernels of the nn layer, on contiguous float32 or
// float64 tensors. Sums accumulate in double so that a sharded computation
// and the single-rank one differ only by the final rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/state_dict.h"
#include "dcpp/tensor.h"

namespace dcpp::nn_kernels {

template <typename F>
decltype(auto) dispatch_float(DType dtype, const char* what, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(float{});
    case DType::kFloat64: return f(double{});
    default:
      throw Error(ErrorCode::kUnsupported,
                  std::string(what) + ": dtype " + std::string(dtype_name(dtype)) + " (float32 or float64 only)");
  }
}

// Throws unless t holds data (not meta).
inline void require_data(const Tensor& t, const char* what) {
  if (t.is_meta())
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": tensor is on the meta device; load or assign real tensors first");
}

// dst += src (same shape; dst contiguous).
inline void add_(Tensor& dst, const Tensor& src) {
  Tensor s = src.to(dst.dtype()).contiguous();
  if (dst.numel() == 0) return;
  dispatch_float(dst.dtype(), "add_", [&](auto zero) {
    using T = decltype(zero);
    T* d = dst.data<T>();
    const T* a = s.data<T>();
    for (int64_t i = 0, n = dst.numel(); i < n; ++i) d[i] += a[i];
  });
}

// The three products below keep each output's sum in one fixed order (the
// contraction index ascending) and vary only which loop runs outermost: the
// weight, the large operand, is streamed once per block of kRowBlock rows
// instead of once per row, and the innermost loop of matmul_nn and
// matmul_tn runs over independent outputs, so it vectorizes. Results do not
// depend on the blocking.
inline constexpr int64_t kRowBlock = 8;

// y[r, o] = sum_i x[r, i] * w[o, i]
template <typename T>
void matmul_nt(const T* x, const T* w, T* y, int64_t rows, int64_t in, int64_t out) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, rows - r0);
    for (int64_t o = 0; o < out; ++o) {
      const T* wo = w + o * in;
      double acc[kRowBlock] = {};
      for (int64_t i = 0; i < in; ++i)
        for (int64_t r = 0; r < nr; ++r) acc[r] += static_cast<double>(x[(r0 + r) * in + i]) * wo[i];
      for (int64_t r = 0; r < nr; ++r) y[(r0 + r) * out + o] = static_cast<T>(acc[r]);
    }
  }
}

// gx[r, i] = sum_o g[r, o] * w[o, i]
template <typename T>
void matmul_nn(const T* g, const T* w, T* gx, int64_t rows, int64_t in, int64_t out) {
  std::vector<double> acc(static_cast<size_t>(std::min(kRowBlock, rows) * in));
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, rows - r0);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t o = 0; o < out; ++o) {
      const T* wo = w + o * in;
      for (int64_t r = 0; r < nr; ++r) {
        const double gro = static_cast<double>(g[(r0 + r) * out + o]);
        double* a = acc.data() + r * in;
        for (int64_t i = 0; i < in; ++i) a[i] += gro * wo[i];
      }
    }
    for (int64_t r = 0; r < nr; ++r)
      for (int64_t i = 0; i < in; ++i) gx[(r0 + r) * in + i] = static_cast<T>(acc[r * in + i]);
  }
}

// gw[o, i] = sum_r g[r, o] * x[r, i]
template <typename T>
void matmul_tn(const T* g, const T* x, T* gw, int64_t rows, int64_t in, int64_t out) {
  std::vector<double> acc(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double gro = static_cast<double>(g[r * out + o]);
      const T* xr = x + r * in;
      for (int64_t i = 0; i < in; ++i) acc[i] += gro * xr[i];
    }
    T* gwo = gw + o * in;
    for (int64_t i = 0; i < in; ++i) gwo[i] = static_cast<T>(acc[i]);
  }
}

// gb[o] = sum_r g[r, o]
template <typename T>
void sum_rows(const T* g, T* gb, int64_t rows, int64_t out) {
  for (int64_t o = 0; o < out; ++o) {
    double acc = 0;
    for (int64_t r = 0; r < rows; ++r) acc += g[r * out + o];
    gb[o] = static_cast<T>(acc);
  }
}

// Copies a Tensor or DTensor value into `dst_local`, whose layout is
// `dst_layout` (null: a whole, undistributed tensor): a DTensor is
// redistributed to that layout (collective), a full Tensor is narrowed to
// this rank's piece, a DTensor into a whole tensor is gathered (collective).
void copy_value_into(Tensor& dst_local, const DTensor* dst_layout, const StateValue& v);

}  // namespace dcpp::nn_kernels
