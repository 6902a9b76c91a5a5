// DefaultSavePlanner: local plans, and the coordinator's global plan (dedup,
// replica comparison, validation).
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <string_view>
#include <unordered_map>

#include "dcpp/chunk_coverage.h"
#include "dcpp/error.h"
#include "dcpp/planner.h"

namespace dcpp {

namespace {

uint64_t hash_tensor(const Tensor& t) {
  Tensor c = t.contiguous();
  return XXH3_64bits(c.data_ptr(), c.nbytes());
}

uint64_t hash_bytes(const Bytes& b) { return XXH3_64bits(b.data(), b.size()); }

std::string hex(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

const char* type_name(WriteItemType t) { return t == WriteItemType::kTensor ? "a tensor" : "a value"; }

}  // namespace

void DefaultSavePlanner::set_up(const FlatStateDict& state_dict, int rank, bool is_coordinator) {
  state_dict_ = state_dict;
  rank_ = rank;
  is_coordinator_ = is_coordinator;
}

SavePlan DefaultSavePlanner::create_local_plan() {
  SavePlan plan;
  for (const std::string& key : state_dict_.keys) {
    const StateValue& value = state_dict_.values.at(key);
    WriteItem item;
    item.fqn = key;
    Tensor local;
    if (value.is_tensor()) {
      local = value.as<Tensor>();
      if (!local.defined()) throw Error(ErrorCode::kInvalidArgument, "tensor '" + key + "' is undefined");
      item.global_shape = local.shape();
      item.offsets.assign(local.shape().size(), 0);
    } else if (value.is_dtensor()) {
      const DTensor& dt = value.as<DTensor>();
      for (const Placement& p : dt.placements()) {
        if (std::holds_alternative<Partial>(p)) {
          throw Error(ErrorCode::kInvalidArgument,
                      "DTensor '" + key + "' has placement " + placement_to_string(p) +
                          " (a pending sum); redistribute it to Replicate or Shard before saving");
        }
      }
      local = dt.to_local();
      item.global_shape = dt.shape();
      item.offsets = dt.global_offset();
    } else {
      item.type = WriteItemType::kValue;
      item.value_kind = value_kind(value);
      Bytes encoded = encode_value(value);
      item.nbytes = encoded.size();
      if (options_.check_replicated) item.content_hash = hash_bytes(encoded);
      plan.items.push_back(std::move(item));
      continue;
    }
    if (local.is_meta()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "tensor '" + key + "' is on the meta device: it has no data to save");
    }
    if (local.is_cuda()) {
      // Device staging (src/io/staging/) is not wired into the writers yet.
      throw Error(ErrorCode::kUnsupported, "tensor '" + key + "' is in the memory of " +
                                               device_string(local.device_spec()) +
                                               ": saving device tensors is not supported yet; "
                                               "copy it to the host first (to(Device::kCpu))");
    }
    item.dtype = local.dtype();
    item.sizes = local.shape();
    item.nbytes = local.nbytes();
    if (local.numel() == 0) {
      plan.empty_chunks.push_back(std::move(item));
      continue;
    }
    if (options_.check_replicated) item.content_hash = hash_tensor(local);
    plan.items.push_back(std::move(item));
  }
  return plan;
}

// The global plan, for about a million chunks (1024 ranks × 1000 tensors):
// keys are interned once, copies are grouped through a hash table and kept
// in flat arrays, so each step is linear or n log n with no per-item tree
// nodes.
namespace {

using LocalPlans = std::vector<SavePlan>;

// Every key once, with the item and rank that first named it; and for each
// rank's items the index of their key.
struct KeyTable {
  struct Key {
    const WriteItem* first;
    int first_rank;
  };
  std::vector<Key> keys;
  std::vector<std::vector<uint32_t>> item_key;  // [rank][item]
};

// Throws unless `item` agrees with the key's first item: the same type, and
// the same value kind or dtype and global shape.
void check_same_key(const KeyTable::Key& info, const WriteItem& item, int rank) {
  const WriteItem& f = *info.first;
  auto who = [&] { return "rank " + std::to_string(info.first_rank) + " and rank " + std::to_string(rank); };
  if (f.type != item.type) {
    throw Error(ErrorCode::kInvalidArgument, "'" + item.fqn + "' is " + type_name(f.type) + " on rank " +
                                                 std::to_string(info.first_rank) + " but " + type_name(item.type) +
                                                 " on rank " + std::to_string(rank));
  }
  if (f.type == WriteItemType::kValue) {
    if (f.value_kind != item.value_kind) {
      throw Error(ErrorCode::kInvalidArgument,
                  "value '" + item.fqn + "' has kind " + std::string(value_kind_name(f.value_kind)) + " and " +
                      std::string(value_kind_name(item.value_kind)) + " on " + who());
    }
    return;
  }
  if (f.dtype != item.dtype) {
    throw Error(ErrorCode::kInvalidArgument, "tensor '" + item.fqn + "' has dtype " +
                                                 std::string(dtype_name(f.dtype)) + " and " +
                                                 std::string(dtype_name(item.dtype)) + " on " + who());
  }
  if (f.global_shape != item.global_shape) {
    throw Error(ErrorCode::kInvalidArgument, "tensor '" + item.fqn + "' has global shape " +
                                                 shape_to_string(f.global_shape) + " and " +
                                                 shape_to_string(item.global_shape) + " on " + who());
  }
}

// Step 1: one dtype, global shape and kind per key on every rank.
KeyTable intern_keys(const LocalPlans& plans) {
  KeyTable table;
  std::unordered_map<std::string_view, uint32_t> index;
  auto intern = [&](const WriteItem& item, int rank) -> uint32_t {
    auto [it, inserted] = index.emplace(item.fqn, static_cast<uint32_t>(table.keys.size()));
    if (inserted) {
      table.keys.push_back({&item, rank});
    } else {
      check_same_key(table.keys[it->second], item, rank);
    }
    return it->second;
  };
  const int world = static_cast<int>(plans.size());
  table.item_key.resize(world);
  for (int r = 0; r < world; ++r) {
    const auto& items = plans[r].items;
    table.item_key[r].resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) table.item_key[r][i] = intern(items[i], r);
    for (const auto& item : plans[r].empty_chunks) intern(item, r);
  }
  return table;
}

// The copies of each (key, offsets) — replicated chunks and values — as
// groups numbered in order of first appearance (rank by rank), each group's
// copies in rank order.
struct CopyGroups {
  struct Copy {
    int rank;
    size_t index;
  };
  std::vector<std::vector<uint32_t>> item_group;  // [rank][item]
  std::vector<size_t> begin;                      // copies of group g: copies[begin[g] .. begin[g + 1])
  std::vector<Copy> copies;

  size_t size() const { return begin.size() - 1; }
  size_t count(size_t g) const { return begin[g + 1] - begin[g]; }
  const Copy& first(size_t g) const { return copies[begin[g]]; }
};

const WriteItem& item_of(const LocalPlans& plans, const CopyGroups::Copy& c) { return plans[c.rank].items[c.index]; }

// Step 2: group the copies.
CopyGroups group_copies(const LocalPlans& plans, const KeyTable& keys) {
  struct GroupKey {
    uint32_t key;
    const Shape* offsets;
    bool operator==(const GroupKey& o) const { return key == o.key && *offsets == *o.offsets; }
  };
  auto hash = [](const GroupKey& k) {
    return static_cast<size_t>(XXH3_64bits_withSeed(k.offsets->data(), k.offsets->size() * sizeof(int64_t), k.key));
  };
  const int world = static_cast<int>(plans.size());
  size_t total_items = 0;
  for (const auto& plan : plans) total_items += plan.items.size();
  CopyGroups groups;
  // An open-addressing table of group numbers (linear probing, at most half
  // full): no node per item, which at millions of chunks costs more in
  // malloc and free than the hashing itself.
  size_t capacity = 16;
  while (capacity < 2 * total_items) capacity *= 2;
  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> slots(capacity, kEmpty);
  std::vector<GroupKey> group_key;
  std::vector<uint32_t> group_size;
  groups.item_group.resize(world);
  for (int r = 0; r < world; ++r) {
    const auto& items = plans[r].items;
    groups.item_group[r].resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const GroupKey k{keys.item_key[r][i], &items[i].offsets};
      size_t at = hash(k) & (capacity - 1);
      while (slots[at] != kEmpty && !(group_key[slots[at]] == k)) at = (at + 1) & (capacity - 1);
      if (slots[at] == kEmpty) {
        slots[at] = static_cast<uint32_t>(group_size.size());
        group_key.push_back(k);
        group_size.push_back(0);
      }
      ++group_size[slots[at]];
      groups.item_group[r][i] = slots[at];
    }
  }
  std::vector<uint32_t>().swap(slots);
  std::vector<GroupKey>().swap(group_key);
  groups.begin.assign(group_size.size() + 1, 0);
  for (size_t g = 0; g < group_size.size(); ++g) groups.begin[g + 1] = groups.begin[g] + group_size[g];
  groups.copies.resize(total_items);
  std::vector<size_t> fill(groups.begin.begin(), groups.begin.end() - 1);
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < groups.item_group[r].size(); ++i) {
      groups.copies[fill[groups.item_group[r][i]]++] = CopyGroups::Copy{r, i};
    }
  }
  return groups;
}

// Step 3: the copies of a group have the same sizes and, with
// check_replicated, the same content checksum.
void check_copies_agree(const LocalPlans& plans, const CopyGroups& groups, bool check_replicated) {
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups.count(g) == 1) continue;
    const WriteItem& first = item_of(plans, groups.first(g));
    for (size_t c = groups.begin[g]; c < groups.begin[g + 1]; ++c) {
      const WriteItem& item = item_of(plans, groups.copies[c]);
      if (item.sizes != first.sizes || item.nbytes != first.nbytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + item.fqn + "' at offsets " + shape_to_string(item.offsets) + " has sizes " +
                        shape_to_string(first.sizes) + " on rank " + std::to_string(groups.first(g).rank) +
                        " but " + shape_to_string(item.sizes) + " on rank " + std::to_string(groups.copies[c].rank));
      }
    }
    if (!check_replicated) continue;
    std::map<uint64_t, std::vector<int>> by_hash;
    for (size_t c = groups.begin[g]; c < groups.begin[g + 1]; ++c) {
      by_hash[item_of(plans, groups.copies[c]).content_hash].push_back(groups.copies[c].rank);
    }
    if (by_hash.size() > 1) {
      std::string detail;
      for (const auto& [h, ranks] : by_hash) {
        detail += (detail.empty() ? "" : "; ") + rank_list(ranks) + " hold checksum " + hex(h);
      }
      throw Error(ErrorCode::kInvalidArgument,
                  "replicated copies of '" + first.fqn + "'" +
                      (first.type == WriteItemType::kTensor ? " at offsets " + shape_to_string(first.offsets)
                                                            : std::string()) +
                      " differ across ranks: " + detail);
    }
  }
}

// Step 4, dedup: the rank that writes each group. Items held by one rank
// stay there; each shared item goes to the holder with the fewest bytes so
// far, largest items first (a greedy longest-processing-time balance), ties
// to the lowest rank. Deterministic: the order depends only on the plans.
std::vector<int> assign_owners(const LocalPlans& plans, const CopyGroups& groups) {
  std::vector<uint64_t> load(plans.size(), 0);
  std::vector<int> owner(groups.size(), -1);
  std::vector<size_t> shared;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups.count(g) == 1) {
      owner[g] = groups.first(g).rank;
      load[owner[g]] += item_of(plans, groups.first(g)).nbytes;
    } else {
      shared.push_back(g);
    }
  }
  std::stable_sort(shared.begin(), shared.end(), [&](size_t a, size_t b) {
    return item_of(plans, groups.first(a)).nbytes > item_of(plans, groups.first(b)).nbytes;
  });
  for (size_t g : shared) {
    int best = -1;
    for (size_t c = groups.begin[g]; c < groups.begin[g + 1]; ++c) {  // copies are in rank order
      if (best < 0 || load[groups.copies[c].rank] < load[best]) best = groups.copies[c].rank;
    }
    owner[g] = best;
    load[best] += item_of(plans, groups.first(g)).nbytes;
  }
  return owner;
}

// Step 5, per tensor: chunks in bounds, disjoint, covering. Keys in name
// order, so the error reported first does not depend on the ranks' plan order.
void validate_tensors(const LocalPlans& plans, const KeyTable& keys, const CopyGroups& groups,
                      const std::vector<int>& owner) {
  std::vector<std::vector<ChunkBox>> chunks(keys.keys.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const CopyGroups::Copy& c = groups.first(g);
    const WriteItem& item = item_of(plans, c);
    if (item.type != WriteItemType::kTensor) continue;
    chunks[keys.item_key[c.rank][c.index]].push_back(ChunkBox{item.offsets, item.sizes, owner[g]});
  }
  std::vector<uint32_t> by_name(keys.keys.size());
  std::iota(by_name.begin(), by_name.end(), 0u);
  std::sort(by_name.begin(), by_name.end(),
            [&](uint32_t a, uint32_t b) { return keys.keys[a].first->fqn < keys.keys[b].first->fqn; });
  for (uint32_t k : by_name) {
    const WriteItem& first = *keys.keys[k].first;
    if (first.type != WriteItemType::kTensor) continue;
    validate_chunk_tiling(first.fqn, first.global_shape, chunks[k]);
  }
}

// Step 6: each rank's final plan: its owned items in its own order, and its empty chunks.
std::vector<SavePlan> build_final_plans(LocalPlans& plans, const CopyGroups& groups, const std::vector<int>& owner) {
  const int world = static_cast<int>(plans.size());
  std::vector<SavePlan> out(world);
  for (int r = 0; r < world; ++r) {
    auto& items = plans[r].items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (owner[groups.item_group[r][i]] == r) out[r].items.push_back(std::move(items[i]));
    }
    out[r].empty_chunks = std::move(plans[r].empty_chunks);
  }
  return out;
}

}  // namespace

std::vector<SavePlan> DefaultSavePlanner::create_global_plan(std::vector<SavePlan> local_plans) {
  const KeyTable keys = intern_keys(local_plans);
  const CopyGroups groups = group_copies(local_plans, keys);
  check_copies_agree(local_plans, groups, options_.check_replicated);
  const std::vector<int> owner = assign_owners(local_plans, groups);
  validate_tensors(local_plans, keys, groups, owner);
  return build_final_plans(local_plans, groups, owner);
}

Tensor DefaultSavePlanner::resolve_tensor(const WriteItem& item) {
  auto it = state_dict_.values.find(item.fqn);
  if (it == state_dict_.values.end()) {
    throw Error(ErrorCode::kInternal, "save plan names '" + item.fqn + "', which rank " + std::to_string(rank_) +
                                          "'s state dict does not hold");
  }
  if (it->second.is_dtensor()) return it->second.as<DTensor>().to_local();
  return it->second.as<Tensor>();
}

Bytes DefaultSavePlanner::resolve_value(const WriteItem& item) {
  auto it = state_dict_.values.find(item.fqn);
  if (it == state_dict_.values.end()) {
    throw Error(ErrorCode::kInternal, "save plan names '" + item.fqn + "', which rank " + std::to_string(rank_) +
                                          "'s state dict does not hold");
  }
  return encode_value(it->second);
}

}  // namespace dcpp
