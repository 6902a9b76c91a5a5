#include "checkpoint/flatten.h"

#include <unordered_set>

#include "dcpp/error.h"

namespace dcpp {

namespace detail {

void LeafSlot::assign(StateValue value) {
  if (in_list) {
    list[index] = std::move(value);
  } else {
    dict.set(key, std::move(value));
  }
}

namespace {

class Flattener {
 public:
  Flattened out;

  void dict(const StateDict& d, std::vector<PathElement>& path) {
    for (const auto& [key, value] : d) {
      PathElement e;
      e.key = key;
      path.push_back(e);
      LeafSlot slot;
      slot.dict = d;  // handle copy: aliases the caller's dict
      slot.key = key;
      visit(value, path, slot);
      path.pop_back();
    }
  }

  void list(const StateList& l, std::vector<PathElement>& path) {
    for (size_t i = 0; i < l.size(); ++i) {
      PathElement e;
      e.is_index = true;
      e.index = static_cast<int64_t>(i);
      path.push_back(e);
      LeafSlot slot;
      slot.in_list = true;
      slot.list = l;
      slot.index = i;
      visit(l[i], path, slot);
      path.pop_back();
    }
  }

  void visit(const StateValue& value, std::vector<PathElement>& path, const LeafSlot& slot) {
    if (value.is_dict()) {
      dict(value.as<StateDict>(), path);
    } else if (value.is_list()) {
      list(value.as<StateList>(), path);
    } else if (value.is_stateful()) {
      const auto& object = value.as<std::shared_ptr<Stateful>>();
      if (!object) null_error(path);
      StatefulEntry entry{object, object->state_dict(), flat_key(path)};
      out.statefuls.push_back(entry);
      dict(entry.state, path);
    } else if (value.is_null()) {
      null_error(path);
    } else {
      std::string key = flat_key(path);
      if (!seen_.insert(key).second) {
        throw Error(ErrorCode::kInvalidArgument,
                    "state dict has two entries with the flat key '" + key +
                        "' (a key containing '.' collides with a nested path)");
      }
      out.leaves.push_back(FlatLeaf{std::move(key), path, value, slot});
    }
  }

 private:
  [[noreturn]] static void null_error(const std::vector<PathElement>& path) {
    throw Error(ErrorCode::kInvalidArgument,
                "state dict key '" + flat_key(path) + "' holds None, which cannot be saved or loaded");
  }
  std::unordered_set<std::string> seen_;
};

}  // namespace

Flattened flatten_with_slots(const StateDict& state_dict) {
  Flattener f;
  std::vector<PathElement> path;
  f.dict(state_dict, path);
  return std::move(f.out);
}

}  // namespace detail

std::string flat_key(const std::vector<PathElement>& path) {
  std::string key;
  for (size_t i = 0; i < path.size(); ++i) {
    if (i) key += '.';
    key += path[i].is_index ? std::to_string(path[i].index) : path[i].key;
  }
  return key;
}

FlatStateDict flatten_state_dict(const StateDict& state_dict) {
  detail::Flattened f = detail::flatten_with_slots(state_dict);
  FlatStateDict out;
  out.keys.reserve(f.leaves.size());
  for (auto& leaf : f.leaves) {
    out.keys.push_back(leaf.key);
    out.paths.emplace(leaf.key, std::move(leaf.path));
    out.values.emplace(leaf.key, std::move(leaf.value));
  }
  return out;
}

bool FlatStateDict::erase(const std::string& key) {
  if (!values.erase(key)) return false;
  paths.erase(key);
  std::erase(keys, key);
  return true;
}

void FlatStateDict::rename(const std::string& from, const std::string& to) {
  auto it = values.find(from);
  if (it == values.end()) {
    throw Error(ErrorCode::kInvalidArgument, "cannot rename '" + from + "': no such key");
  }
  if (values.count(to)) {
    throw Error(ErrorCode::kInvalidArgument, "cannot rename '" + from + "' to '" + to + "': key exists");
  }
  values.emplace(to, std::move(it->second));
  values.erase(it);
  // The old nesting no longer spells the new key; record the new key's own
  // dotted components instead.
  paths.erase(from);
  std::vector<PathElement> path;
  size_t start = 0;
  while (true) {
    size_t dot = to.find('.', start);
    PathElement e;
    e.key = to.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    path.push_back(std::move(e));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  paths[to] = std::move(path);
  for (auto& k : keys) {
    if (k == from) k = to;
  }
}

}  // namespace dcpp
