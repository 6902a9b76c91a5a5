// DefaultSavePlanner: local plans, and the coordinator's global plan (dedup,
// replica comparison, validation).
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "checkpoint/chunk_coverage.h"
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

std::vector<SavePlan> DefaultSavePlanner::create_global_plan(std::vector<SavePlan> local_plans) {
  const int world = static_cast<int>(local_plans.size());

  // 1. One dtype, global shape and kind per key on every rank.
  struct KeyInfo {
    const WriteItem* first;
    int first_rank;
  };
  std::map<std::string, KeyInfo> keys;
  auto check_key = [&](const WriteItem& item, int rank) {
    auto [it, inserted] = keys.emplace(item.fqn, KeyInfo{&item, rank});
    if (inserted) return;
    const WriteItem& f = *it->second.first;
    const std::string who = "rank " + std::to_string(it->second.first_rank) + " and rank " + std::to_string(rank);
    if (f.type != item.type) {
      throw Error(ErrorCode::kInvalidArgument, "'" + item.fqn + "' is " + type_name(f.type) + " on rank " +
                                                   std::to_string(it->second.first_rank) + " but " +
                                                   type_name(item.type) + " on rank " + std::to_string(rank));
    }
    if (f.type == WriteItemType::kValue) {
      if (f.value_kind != item.value_kind) {
        throw Error(ErrorCode::kInvalidArgument,
                    "value '" + item.fqn + "' has kind " + std::string(value_kind_name(f.value_kind)) + " and " +
                        std::string(value_kind_name(item.value_kind)) + " on " + who);
      }
      return;
    }
    if (f.dtype != item.dtype) {
      throw Error(ErrorCode::kInvalidArgument, "tensor '" + item.fqn + "' has dtype " +
                                                   std::string(dtype_name(f.dtype)) + " and " +
                                                   std::string(dtype_name(item.dtype)) + " on " + who);
    }
    if (f.global_shape != item.global_shape) {
      throw Error(ErrorCode::kInvalidArgument, "tensor '" + item.fqn + "' has global shape " +
                                                   shape_to_string(f.global_shape) + " and " +
                                                   shape_to_string(item.global_shape) + " on " + who);
    }
  };
  for (int r = 0; r < world; ++r) {
    for (const auto& item : local_plans[r].items) check_key(item, r);
    for (const auto& item : local_plans[r].empty_chunks) check_key(item, r);
  }

  // 2. Group the copies of each (fqn, offsets): replicated chunks and values.
  struct Copy {
    int rank;
    size_t index;
  };
  struct Group {
    std::vector<Copy> copies;
  };
  std::vector<Group> groups;
  std::map<std::pair<std::string, Shape>, size_t> group_of;
  for (int r = 0; r < world; ++r) {
    const auto& items = local_plans[r].items;
    for (size_t i = 0; i < items.size(); ++i) {
      auto [it, inserted] = group_of.emplace(std::make_pair(items[i].fqn, items[i].offsets), groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].copies.push_back(Copy{r, i});
    }
  }
  auto item_of = [&](const Copy& c) -> const WriteItem& { return local_plans[c.rank].items[c.index]; };

  for (const Group& g : groups) {
    const WriteItem& first = item_of(g.copies[0]);
    for (const Copy& c : g.copies) {
      const WriteItem& item = item_of(c);
      if (item.sizes != first.sizes || item.nbytes != first.nbytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + item.fqn + "' at offsets " + shape_to_string(item.offsets) + " has sizes " +
                        shape_to_string(first.sizes) + " on rank " + std::to_string(g.copies[0].rank) +
                        " but " + shape_to_string(item.sizes) + " on rank " + std::to_string(c.rank));
      }
    }
    if (options_.check_replicated && g.copies.size() > 1) {
      std::map<uint64_t, std::vector<int>> by_hash;
      for (const Copy& c : g.copies) by_hash[item_of(c).content_hash].push_back(c.rank);
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

  // 3. Dedup: items held by one rank stay there; each shared item goes to the
  // holder with the fewest bytes so far, largest items first (a greedy
  // longest-processing-time balance), ties to the lowest rank. Deterministic:
  // the order depends only on the plans.
  std::vector<uint64_t> load(world, 0);
  std::vector<int> owner(groups.size(), -1);
  std::vector<size_t> shared;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].copies.size() == 1) {
      owner[g] = groups[g].copies[0].rank;
      load[owner[g]] += item_of(groups[g].copies[0]).nbytes;
    } else {
      shared.push_back(g);
    }
  }
  std::stable_sort(shared.begin(), shared.end(), [&](size_t a, size_t b) {
    return item_of(groups[a].copies[0]).nbytes > item_of(groups[b].copies[0]).nbytes;
  });
  for (size_t g : shared) {
    int best = -1;
    for (const Copy& c : groups[g].copies) {  // copies are in rank order
      if (best < 0 || load[c.rank] < load[best]) best = c.rank;
    }
    owner[g] = best;
    load[best] += item_of(groups[g].copies[0]).nbytes;
  }

  // 4. Per tensor: chunks in bounds, disjoint, covering.
  std::map<std::string, std::vector<detail::ChunkBox>> chunks;
  for (size_t g = 0; g < groups.size(); ++g) {
    const WriteItem& item = item_of(groups[g].copies[0]);
    if (item.type != WriteItemType::kTensor) continue;
    chunks[item.fqn].push_back(detail::ChunkBox{item.offsets, item.sizes, owner[g]});
  }
  for (const auto& [key, info] : keys) {
    if (info.first->type != WriteItemType::kTensor) continue;
    static const std::vector<detail::ChunkBox> kNone;
    auto it = chunks.find(key);
    detail::validate_chunk_tiling(key, info.first->global_shape, it == chunks.end() ? kNone : it->second);
  }

  // 5. Final plans keep each rank's own item order.
  std::vector<SavePlan> out(world);
  std::vector<std::vector<bool>> keep(world);
  for (int r = 0; r < world; ++r) keep[r].assign(local_plans[r].items.size(), false);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const Copy& c : groups[g].copies) {
      if (c.rank == owner[g]) keep[c.rank][c.index] = true;
    }
  }
  for (int r = 0; r < world; ++r) {
    auto& items = local_plans[r].items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (keep[r][i]) out[r].items.push_back(std::move(items[i]));
    }
  }
  return out;
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
