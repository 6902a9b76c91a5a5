// Private to the checkpoint layer: flattening a nested state dict while
// remembering where every leaf lives, so that load can write replacements
// (tensors allocated for meta, loaded values) back into the caller's own
// dicts and lists, and hand Stateful objects their filled state.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dcpp/planner.h"
#include "dcpp/state_dict.h"

namespace dcpp::detail {

// The container holding one leaf, and the leaf's key or index in it. The
// handles alias the caller's containers (reference semantics).
struct LeafSlot {
  bool in_list = false;
  StateDict dict;
  StateList list;
  std::string key;
  size_t index = 0;

  void assign(StateValue value);
};

struct FlatLeaf {
  std::string key;  // dotted
  std::vector<PathElement> path;
  StateValue value;  // aliases the caller's tensors
  LeafSlot slot;
};

// A Stateful met while flattening: the state it gave, to be handed back.
struct StatefulEntry {
  std::shared_ptr<Stateful> object;
  StateDict state;
  std::string key;  // dotted key of the stateful itself
};

struct Flattened {
  std::vector<FlatLeaf> leaves;           // insertion order (depth first)
  std::vector<StatefulEntry> statefuls;   // outer before inner
};

// Throws Error(kInvalidArgument) for duplicate dotted keys and null values.
Flattened flatten_with_slots(const StateDict& state_dict);

}  // namespace dcpp::detail
