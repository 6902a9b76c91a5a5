#include "dcpp/state_dict.h"

#include <typeinfo>
#include <unordered_map>

#include "dcpp/error.h"

namespace dcpp {

// Entries keep insertion order in a vector; the index makes lookups O(1).
struct StateDict::Impl {
  std::vector<Entry> entries;
  std::unordered_map<std::string, size_t> index;

  void reindex_from(size_t first) {
    for (size_t i = first; i < entries.size(); ++i) index[entries[i].first] = i;
  }
};

StateDict::StateDict() : impl_(std::make_shared<Impl>()) {}

StateDict::StateDict(std::initializer_list<Entry> entries) : StateDict() {
  for (const auto& e : entries) set(e.first, e.second);
}

size_t StateDict::size() const { return impl_->entries.size(); }

bool StateDict::contains(const std::string& key) const { return impl_->index.count(key) != 0; }

StateValue* StateDict::find(const std::string& key) {
  auto it = impl_->index.find(key);
  return it == impl_->index.end() ? nullptr : &impl_->entries[it->second].second;
}

const StateValue* StateDict::find(const std::string& key) const {
  auto it = impl_->index.find(key);
  return it == impl_->index.end() ? nullptr : &impl_->entries[it->second].second;
}

StateValue& StateDict::at(const std::string& key) {
  if (StateValue* v = find(key)) return *v;
  throw Error(ErrorCode::kNotFound, "state dict has no key '" + key + "'");
}

const StateValue& StateDict::at(const std::string& key) const {
  if (const StateValue* v = find(key)) return *v;
  throw Error(ErrorCode::kNotFound, "state dict has no key '" + key + "'");
}

StateValue& StateDict::operator[](const std::string& key) {
  if (StateValue* v = find(key)) return *v;
  impl_->index.emplace(key, impl_->entries.size());
  impl_->entries.emplace_back(key, StateValue());
  return impl_->entries.back().second;
}

void StateDict::set(const std::string& key, StateValue value) { (*this)[key] = std::move(value); }

bool StateDict::erase(const std::string& key) {
  auto it = impl_->index.find(key);
  if (it == impl_->index.end()) return false;
  size_t pos = it->second;
  impl_->index.erase(it);
  impl_->entries.erase(impl_->entries.begin() + static_cast<std::ptrdiff_t>(pos));
  impl_->reindex_from(pos);
  return true;
}

void StateDict::clear() {
  impl_->entries.clear();
  impl_->index.clear();
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) out.push_back(e.first);
  return out;
}

std::vector<StateDict::Entry>::iterator StateDict::begin() { return impl_->entries.begin(); }
std::vector<StateDict::Entry>::iterator StateDict::end() { return impl_->entries.end(); }
std::vector<StateDict::Entry>::const_iterator StateDict::begin() const { return impl_->entries.begin(); }
std::vector<StateDict::Entry>::const_iterator StateDict::end() const { return impl_->entries.end(); }

StateDict StateDict::clone() const {
  StateDict out;
  out.impl_->entries.reserve(impl_->entries.size());
  for (const auto& [key, value] : impl_->entries) {
    out.impl_->index.emplace(key, out.impl_->entries.size());
    out.impl_->entries.emplace_back(key, value.clone());
  }
  return out;
}

// ---- StateList ----

StateList::StateList() : impl_(std::make_shared<std::vector<StateValue>>()) {}
StateList::StateList(std::initializer_list<StateValue> values)
    : impl_(std::make_shared<std::vector<StateValue>>(values)) {}
size_t StateList::size() const { return impl_->size(); }

StateValue& StateList::operator[](size_t i) {
  if (i >= impl_->size())
    throw Error(ErrorCode::kNotFound, "state list index " + std::to_string(i) + " out of range (size " +
                                          std::to_string(impl_->size()) + ")");
  return (*impl_)[i];
}

const StateValue& StateList::operator[](size_t i) const {
  if (i >= impl_->size())
    throw Error(ErrorCode::kNotFound, "state list index " + std::to_string(i) + " out of range (size " +
                                          std::to_string(impl_->size()) + ")");
  return (*impl_)[i];
}

void StateList::push_back(StateValue value) { impl_->push_back(std::move(value)); }
std::vector<StateValue>::iterator StateList::begin() { return impl_->begin(); }
std::vector<StateValue>::iterator StateList::end() { return impl_->end(); }
std::vector<StateValue>::const_iterator StateList::begin() const { return impl_->begin(); }
std::vector<StateValue>::const_iterator StateList::end() const { return impl_->end(); }

StateList StateList::clone() const {
  StateList out;
  out.impl_->reserve(impl_->size());
  for (const auto& v : *impl_) out.impl_->push_back(v.clone());
  return out;
}

// ---- StateValue ----

std::string StateValue::type_name() const {
  static const char* const kNames[] = {"None", "Tensor", "DTensor", "int",  "float",   "bool",
                                       "str",  "bytes",  "dict",    "list", "stateful"};
  static_assert(std::variant_size_v<Variant> == std::size(kNames));
  return kNames[v_.index()];
}

namespace {

// Maps the typeid name as() was asked for to the Python-style name users see.
std::string wanted_type_name(const char* mangled) {
  struct Known {
    const std::type_info& type;
    const char* name;
  };
  static const Known kKnown[] = {
      {typeid(Tensor), "Tensor"}, {typeid(DTensor), "DTensor"},       {typeid(int64_t), "int"},
      {typeid(double), "float"},  {typeid(bool), "bool"},             {typeid(std::string), "str"},
      {typeid(Bytes), "bytes"},   {typeid(StateDict), "dict"},        {typeid(StateList), "list"},
      {typeid(std::shared_ptr<Stateful>), "stateful"}, {typeid(std::monostate), "None"},
  };
  for (const auto& k : kKnown)
    if (std::string(k.type.name()) == mangled) return k.name;
  return mangled;
}

}  // namespace

void StateValue::throw_type_mismatch(const char* wanted) const {
  throw Error(ErrorCode::kInvalidArgument,
              "state value holds " + type_name() + ", not " + wanted_type_name(wanted));
}

StateValue StateValue::clone() const {
  return std::visit(
      [](const auto& v) -> StateValue {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return StateValue();
        } else if constexpr (std::is_same_v<T, Tensor> || std::is_same_v<T, DTensor> ||
                             std::is_same_v<T, StateDict> || std::is_same_v<T, StateList>) {
          if constexpr (std::is_same_v<T, Tensor>) {
            if (!v.defined()) return StateValue(Tensor());
          }
          if constexpr (std::is_same_v<T, DTensor>) {
            if (!v.defined()) return StateValue(DTensor());
          }
          return StateValue(v.clone());
        } else {
          return StateValue(v);  // scalars and bytes copy; stateful objects are shared
        }
      },
      v_);
}

}  // namespace dcpp
