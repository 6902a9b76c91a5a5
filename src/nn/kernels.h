// Element-wise and matrix kernels of the nn layer, on contiguous float32 or
// float64 tensors. Sums accumulate in double so that a sharded computation
// and the single-rank one differ only by the final rounding.
#pragma once

#include <cmath>

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

// y[r, o] = sum_i x[r, i] * w[o, i]
template <typename T>
void matmul_nt(const T* x, const T* w, T* y, int64_t rows, int64_t in, int64_t out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = static_cast<T>(acc);
    }
}

// gx[r, i] = sum_o g[r, o] * w[o, i]
template <typename T>
void matmul_nn(const T* g, const T* w, T* gx, int64_t rows, int64_t in, int64_t out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t o = 0; o < out; ++o) acc += static_cast<double>(g[r * out + o]) * w[o * in + i];
      gx[r * in + i] = static_cast<T>(acc);
    }
}

// gw[o, i] = sum_r g[r, o] * x[r, i]
template <typename T>
void matmul_tn(const T* g, const T* x, T* gw, int64_t rows, int64_t in, int64_t out) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += static_cast<double>(g[r * out + o]) * x[r * in + i];
      gw[o * in + i] = static_cast<T>(acc);
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
