// Private to the Python module: dcpp tensors as NumPy arrays and DLPack
// objects, and arrays from Python as dcpp tensors, without copies.
//
// A tensor handed to Python keeps its storage alive through the array's
// owner (a capsule holding a copy of the Tensor, which shares the storage);
// an array handed to dcpp is wrapped with Tensor::from_blob, so the caller's
// array must outlive the call that uses the tensor (the bindings only use it
// inside one call, with the GIL released only where nothing Python runs).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "dcpp/tensor.h"

namespace dcpp::python {

namespace nb = nanobind;

// Any CPU array from Python: NumPy, or anything with __dlpack__ (torch).
using AnyArray = nb::ndarray<nb::device::cpu>;
using ReadOnlyArray = nb::ndarray<nb::ro, nb::device::cpu>;

DType dtype_from_dlpack(nb::dlpack::dtype dtype);
nb::dlpack::dtype dtype_to_dlpack(DType dtype);

// A view of the array's memory (strides and all); no copy.
Tensor tensor_from_array(const ReadOnlyArray& array);
Tensor tensor_from_array(const AnyArray& array);

// The tensor as a NumPy array sharing its memory. bfloat16 and float8 have
// no NumPy dtype: Error(kUnsupported) names the key and suggests dtype=
// or read_dlpack.
nb::ndarray<nb::numpy> tensor_to_numpy(const Tensor& tensor, const std::string& key);
// The tensor as a framework-neutral array with __dlpack__ (torch.from_dlpack
// takes it, bfloat16 included).
nb::ndarray<nb::array_api> tensor_to_dlpack(const Tensor& tensor, const std::string& key);

}  // namespace dcpp::python
