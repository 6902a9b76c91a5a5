#include "state_dicts.h"

#include <nanobind/stl/string.h>

#include "arrays.h"
#include "dcpp/error.h"

namespace dcpp::python {
namespace {

StateValue from_python(const nb::handle& obj, const std::string& key, bool writable);

StateList list_from_python(const nb::handle& obj, const std::string& key, bool writable) {
  StateList list;
  size_t i = 0;
  for (nb::handle item : obj) list.push_back(from_python(item, key + "." + std::to_string(i++), writable));
  return list;
}

StateValue from_python(const nb::handle& obj, const std::string& key, bool writable) {
  // bool before int: Python's bool is an int.
  if (nb::isinstance<nb::bool_>(obj)) return StateValue(nb::cast<bool>(obj));
  if (nb::isinstance<nb::int_>(obj)) return StateValue(nb::cast<int64_t>(obj));
  if (nb::isinstance<nb::float_>(obj)) return StateValue(nb::cast<double>(obj));
  if (nb::isinstance<nb::str>(obj)) return StateValue(nb::cast<std::string>(obj));
  if (nb::isinstance<nb::bytes>(obj)) {
    nb::bytes b = nb::borrow<nb::bytes>(obj);
    const auto* p = reinterpret_cast<const std::byte*>(b.c_str());
    return StateValue(Bytes(p, p + b.size()));
  }
  if (nb::isinstance<nb::dict>(obj)) {
    StateDict nested;
    for (auto [k, v] : nb::borrow<nb::dict>(obj)) {
      const std::string name = nb::cast<std::string>(nb::str(k));
      nested.set(name, from_python(v, key + "." + name, writable));
    }
    return StateValue(std::move(nested));
  }
  if (nb::isinstance<nb::list>(obj) || nb::isinstance<nb::tuple>(obj)) {
    return StateValue(list_from_python(obj, key, writable));
  }
  if (writable) {
    AnyArray array;
    if (nb::try_cast(obj, array)) return StateValue(tensor_from_array(array));
  } else {
    ReadOnlyArray array;
    if (nb::try_cast(obj, array)) return StateValue(tensor_from_array(array));
  }
  throw Error(ErrorCode::kInvalidArgument,
              "state dict key '" + key + "': cannot " + (writable ? "load into" : "save") + " a Python " +
                  nb::cast<std::string>(nb::str(obj.type().attr("__name__"))) +
                  (writable ? " (a load target must be a writable CPU array, or a dict or list of them)"
                            : " (expected an array, int, float, bool, str, bytes, dict or list)"));
}

}  // namespace

StateDict state_dict_from_python(const nb::dict& dict, bool writable) {
  StateDict out;
  for (auto [k, v] : dict) {
    const std::string key = nb::cast<std::string>(nb::str(k));
    out.set(key, from_python(v, key, writable));
  }
  return out;
}

nb::object value_to_python(const StateValue& value, const std::string& key) {
  const auto& v = value.variant();
  if (std::holds_alternative<int64_t>(v)) return nb::int_(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return nb::float_(std::get<double>(v));
  if (std::holds_alternative<bool>(v)) return nb::bool_(std::get<bool>(v));
  if (std::holds_alternative<std::string>(v)) return nb::str(std::get<std::string>(v).c_str(), std::get<std::string>(v).size());
  if (std::holds_alternative<Bytes>(v)) {
    const Bytes& b = std::get<Bytes>(v);
    return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size());
  }
  if (std::holds_alternative<Tensor>(v)) return nb::cast(tensor_to_numpy(std::get<Tensor>(v), key));
  if (std::holds_alternative<StateDict>(v)) return state_dict_to_python(std::get<StateDict>(v));
  if (std::holds_alternative<StateList>(v)) {
    nb::list list;
    const StateList& l = std::get<StateList>(v);
    for (size_t i = 0; i < l.size(); ++i) list.append(value_to_python(l[i], key + "." + std::to_string(i)));
    return list;
  }
  if (value.is_null()) return nb::none();
  throw Error(ErrorCode::kUnsupported, "state dict key '" + key + "' holds a " + value.type_name() +
                                           ", which has no Python form here");
}

nb::dict state_dict_to_python(const StateDict& state_dict) {
  nb::dict out;
  for (const auto& [key, value] : state_dict) out[nb::str(key.c_str(), key.size())] = value_to_python(value, key);
  return out;
}

void copy_values_back(nb::dict& dict, const StateDict& loaded) {
  for (const auto& [key, value] : loaded) {
    nb::str name(key.c_str(), key.size());
    if (value.is_dict()) {
      nb::object nested = dict[name];
      if (nb::isinstance<nb::dict>(nested)) {
        nb::dict d = nb::borrow<nb::dict>(nested);
        copy_values_back(d, value.dict());
      }
    } else if (!value.is_tensor() && !value.is_dtensor() && !value.is_list() && !value.is_null()) {
      dict[name] = value_to_python(value, key);
    }
  }
}

}  // namespace dcpp::python
