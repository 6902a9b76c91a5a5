// StateDict — the nested, ordered, heterogeneous dictionary that models,
// optimizers and training loops hand to save and load.
//
// Values: Tensor, DTensor, int64, double, bool, string, Bytes, a nested
// StateDict, a StateList, or a Stateful object (save asks it for its state,
// load fills that state and hands it back). Keys keep insertion order.
// StateDict and StateList are handles with Python's reference semantics:
// copying one aliases the same entries (`a is b` is `a.is(b)`); clone() is a
// deep copy that also copies tensor data (deepcopy in the seed test).
// Thread-safety: none; a state dict belongs to one rank.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <typeinfo>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dcpp/dtensor.h"
#include "dcpp/tensor.h"

namespace dcpp {

class StateDict;
class StateList;
class StateValue;

using Bytes = std::vector<std::byte>;

// An object that provides and accepts state (PyTorch's Stateful protocol).
class Stateful {
 public:
  virtual ~Stateful() = default;
  virtual StateDict state_dict() = 0;
  virtual void load_state_dict(const StateDict& state) = 0;
};

class StateDict {
 public:
  using Entry = std::pair<std::string, StateValue>;

  StateDict();
  StateDict(std::initializer_list<Entry> entries);

  size_t size() const;
  bool empty() const { return size() == 0; }
  bool contains(const std::string& key) const;
  // Throws Error(kNotFound) naming the key.
  StateValue& at(const std::string& key);
  const StateValue& at(const std::string& key) const;
  StateValue* find(const std::string& key);
  const StateValue* find(const std::string& key) const;
  // Inserts a null value at the end when missing (like Python's d[k] = ...).
  StateValue& operator[](const std::string& key);
  // Inserts or replaces (keeping the original position when replacing).
  void set(const std::string& key, StateValue value);
  bool erase(const std::string& key);
  void clear();
  std::vector<std::string> keys() const;

  std::vector<Entry>::iterator begin();
  std::vector<Entry>::iterator end();
  std::vector<Entry>::const_iterator begin() const;
  std::vector<Entry>::const_iterator end() const;

  // Same underlying dictionary (Python `is`).
  bool is(const StateDict& other) const { return impl_ == other.impl_; }
  StateDict clone() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

class StateList {
 public:
  StateList();
  StateList(std::initializer_list<StateValue> values);
  size_t size() const;
  StateValue& operator[](size_t i);
  const StateValue& operator[](size_t i) const;
  void push_back(StateValue value);
  std::vector<StateValue>::iterator begin();
  std::vector<StateValue>::iterator end();
  std::vector<StateValue>::const_iterator begin() const;
  std::vector<StateValue>::const_iterator end() const;
  bool is(const StateList& other) const { return impl_ == other.impl_; }
  StateList clone() const;

 private:
  std::shared_ptr<std::vector<StateValue>> impl_;
};

class StateValue {
 public:
  using Variant = std::variant<std::monostate, Tensor, DTensor, int64_t, double, bool, std::string, Bytes,
                               StateDict, StateList, std::shared_ptr<Stateful>>;

  StateValue() = default;
  StateValue(Tensor v) : v_(std::move(v)) {}
  StateValue(DTensor v) : v_(std::move(v)) {}
  StateValue(int64_t v) : v_(v) {}
  StateValue(int v) : v_(static_cast<int64_t>(v)) {}
  StateValue(double v) : v_(v) {}
  StateValue(bool v) : v_(v) {}
  StateValue(std::string v) : v_(std::move(v)) {}
  StateValue(const char* v) : v_(std::string(v)) {}
  StateValue(Bytes v) : v_(std::move(v)) {}
  StateValue(StateDict v) : v_(std::move(v)) {}
  StateValue(StateList v) : v_(std::move(v)) {}
  StateValue(std::shared_ptr<Stateful> v) : v_(std::move(v)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_tensor() const { return std::holds_alternative<Tensor>(v_); }
  bool is_dtensor() const { return std::holds_alternative<DTensor>(v_); }
  bool is_dict() const { return std::holds_alternative<StateDict>(v_); }
  bool is_list() const { return std::holds_alternative<StateList>(v_); }
  bool is_stateful() const { return std::holds_alternative<std::shared_ptr<Stateful>>(v_); }
  template <typename T>
  bool holds() const { return std::holds_alternative<T>(v_); }

  // Typed access; throws Error(kInvalidArgument) naming the held type on mismatch.
  template <typename T>
  T& as();
  template <typename T>
  const T& as() const;

  Tensor& tensor() { return as<Tensor>(); }
  DTensor& dtensor() { return as<DTensor>(); }
  StateDict& dict() { return as<StateDict>(); }
  const StateDict& dict() const { return as<StateDict>(); }
  StateList& list() { return as<StateList>(); }

  // "Tensor", "DTensor", "int", "float", "bool", "str", "bytes", "dict", "list", "stateful", "None".
  std::string type_name() const;

  Variant& variant() { return v_; }
  const Variant& variant() const { return v_; }

  // Deep copy: tensors' data copied, dicts/lists recursively; stateful objects shared.
  StateValue clone() const;

 private:
  [[noreturn]] void throw_type_mismatch(const char* wanted) const;
  Variant v_;
};

template <typename T>
T& StateValue::as() {
  if (auto* p = std::get_if<T>(&v_)) return *p;
  throw_type_mismatch(typeid(T).name());
}
template <typename T>
const T& StateValue::as() const {
  if (auto* p = std::get_if<T>(&v_)) return *p;
  throw_type_mismatch(typeid(T).name());
}

}  // namespace dcpp
