// Private to the tensor layer: the strided copy engine behind copy_from,
// clone, to(), fill_ and the random factories, plus scalar load/store of one
// element of any dtype.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dcpp/dtype.h"

namespace dcpp::detail {

// Copies `sizes` elements from src (src_dtype, element strides src_strides)
// into dst (dst_dtype, element strides dst_strides). Same dtype: dimensions
// are reordered by destination stride and coalesced, so every run that is
// contiguous on both sides is one memcpy. A zero source stride broadcasts
// (fill_ relies on it). Different dtypes convert element by element with
// copy_ semantics. src and dst must not overlap.
void copy_strided(const Shape& sizes, DType dst_dtype, std::byte* dst, const int64_t* dst_strides,
                  DType src_dtype, const std::byte* src, const int64_t* src_strides);

// One element as a double (exact for every dtype except int64 beyond 2^53).
double load_double(DType dtype, const std::byte* p);
// Stores `value` converted as copy_ converts a float64 source: round to
// nearest even for floats; truncation toward zero for integers (NaN gives
// 0, out-of-range values saturate to int64 and then wrap, as a C cast
// through int64 does); nonzero (NaN included) gives true for bool.
void store_double(DType dtype, std::byte* p, double value);

}  // namespace dcpp::detail
