// Private to the Python module: Python dicts as dcpp state dicts and back.
//
// A state dict from Python is a dict of str keys whose values are arrays
// (NumPy, or anything with __dlpack__ on the CPU: torch tensors), int,
// float, bool, str, bytes, or nested dicts and lists of these. Arrays are
// wrapped, not copied: the dict must stay alive and unchanged during the call.
#pragma once

#include <nanobind/nanobind.h>

#include "dcpp/state_dict.h"

namespace dcpp::python {

namespace nb = nanobind;

// `writable`: arrays must be writable (a load target), else read-only ones are taken too.
StateDict state_dict_from_python(const nb::dict& dict, bool writable);
// Values as Python objects (int, float, bool, str, bytes); tensors as NumPy arrays.
nb::object value_to_python(const StateValue& value, const std::string& key);
nb::dict state_dict_to_python(const StateDict& state_dict);
// After a load: puts the loaded non-tensor values (int, float, bool, str,
// bytes, at any depth of nested dicts) back into the Python dict they came from.
void copy_values_back(nb::dict& dict, const StateDict& loaded);

}  // namespace dcpp::python
