// DefaultLoadPlanner: validation of the caller's state dict against the
// metadata, overlap boxes, and the write-back into the caller's containers.
#include <algorithm>
#include <unordered_map>

#include "checkpoint/flatten.h"
#include "dcpp/error.h"
#include "dcpp/planner.h"

namespace dcpp {

struct DefaultLoadPlanner::Impl {
  struct Target {
    std::string ckpt_key;
    detail::FlatLeaf leaf;
    bool is_value = false;
    // Tensors: where the bytes go, and the global box it covers.
    Tensor local;
    Shape global_offset;
    bool allocated = false;  // replaced a meta tensor: write back at finish
    StateValue replacement;  // the new Tensor or DTensor
    // Values.
    std::optional<StateValue> loaded;
  };
  std::vector<Target> targets;
  std::unordered_map<std::string, size_t> by_ckpt_key;
  std::vector<detail::StatefulEntry> statefuls;

  Target& target(const ReadItem& item) {
    auto it = by_ckpt_key.find(item.fqn);
    if (it == by_ckpt_key.end()) {
      throw Error(ErrorCode::kInternal, "read item names '" + item.fqn + "', which this load did not plan");
    }
    return targets[it->second];
  }
};

DefaultLoadPlanner::DefaultLoadPlanner(LoadPlannerOptions options) : options_(options) {}
DefaultLoadPlanner::~DefaultLoadPlanner() = default;

namespace {

std::string quoted_key(const std::string& key, const std::string& ckpt_key) {
  std::string s = "'" + key + "'";
  if (ckpt_key != key) s += " (checkpoint key '" + ckpt_key + "')";
  return s;
}

}  // namespace

void DefaultLoadPlanner::set_up(StateDict& state_dict, const Metadata& metadata, int rank, bool is_coordinator) {
  metadata_ = &metadata;
  rank_ = rank;
  impl_ = std::make_unique<Impl>();
  detail::Flattened flat = detail::flatten_with_slots(state_dict);
  flat_ = FlatStateDict{};
  for (const auto& leaf : flat.leaves) {
    flat_.keys.push_back(leaf.key);
    flat_.values.emplace(leaf.key, leaf.value);
    flat_.paths.emplace(leaf.key, leaf.path);
  }
  impl_->statefuls = std::move(flat.statefuls);

  // Every problem is collected first, so that one error lists them all and
  // nothing of the caller's is touched unless everything is loadable.
  std::vector<std::string> missing;
  std::vector<std::string> problems;
  for (auto& leaf : flat.leaves) {
    std::optional<std::string> mapped = checkpoint_key(leaf.key);
    if (!mapped) continue;
    const std::string& ck = *mapped;
    const std::string name = quoted_key(leaf.key, ck);
    Impl::Target t;
    t.ckpt_key = ck;
    const StateValue& v = leaf.value;
    const bool wants_tensor = v.is_tensor() || v.is_dtensor();
    auto tm = metadata.tensors.find(ck);
    auto vm = metadata.values.find(ck);
    if (tm == metadata.tensors.end() && vm == metadata.values.end()) {
      if (!options_.allow_partial_load) missing.push_back(name);
      continue;
    }
    if (wants_tensor && tm == metadata.tensors.end()) {
      problems.push_back(name + " is a tensor in the state dict but a " +
                         std::string(value_kind_name(vm->second.kind)) + " value in the checkpoint");
      continue;
    }
    if (!wants_tensor && vm == metadata.values.end()) {
      problems.push_back(name + " is a " + v.type_name() + " in the state dict but a tensor in the checkpoint");
      continue;
    }
    if (impl_->by_ckpt_key.count(ck)) {
      problems.push_back(name + " and '" + impl_->targets[impl_->by_ckpt_key[ck]].leaf.key +
                         "' both map to checkpoint key '" + ck + "'");
      continue;
    }
    if (wants_tensor) {
      Shape global_shape;
      if (v.is_tensor()) {
        t.local = v.as<Tensor>();
        if (!t.local.defined()) {
          problems.push_back(name + " is an undefined tensor");
          continue;
        }
        global_shape = t.local.shape();
        t.global_offset.assign(global_shape.size(), 0);
      } else {
        const DTensor& dt = v.as<DTensor>();
        bool partial = false;
        for (const auto& p : dt.placements()) partial |= std::holds_alternative<Partial>(p);
        if (partial) {
          problems.push_back(name + " is a DTensor with a Partial placement, which cannot be loaded into");
          continue;
        }
        t.local = dt.to_local();
        global_shape = dt.shape();
        t.global_offset = dt.global_offset();
      }
      if (t.local.is_cuda()) {
        problems.push_back(name + " is in the memory of " + device_string(t.local.device_spec()) +
                           ": loading into device tensors is not supported yet; load into host tensors and "
                           "copy them (to(device))");
        continue;
      }
      if (global_shape != tm->second.global_shape) {
        problems.push_back(name + " has global shape " + shape_to_string(tm->second.global_shape) +
                           " in the checkpoint but " + shape_to_string(global_shape) + " in the state dict");
        continue;
      }
    } else {
      t.is_value = true;
    }
    t.leaf = leaf;
    impl_->by_ckpt_key.emplace(ck, impl_->targets.size());
    impl_->targets.push_back(std::move(t));
  }
  if (!missing.empty() || !problems.empty()) {
    std::string msg = "cannot load from the checkpoint (world size " + std::to_string(metadata.world_size) +
                      ", " + std::to_string(metadata.tensors.size() + metadata.values.size()) + " keys): ";
    if (!missing.empty()) {
      msg += std::to_string(missing.size()) + " requested key" + (missing.size() > 1 ? "s are" : " is") +
             " missing from it: ";
      for (size_t i = 0; i < missing.size(); ++i) msg += (i ? ", " : "") + missing[i];
    }
    for (const auto& p : problems) msg += (msg.back() == ' ' ? "" : "; ") + p;
    throw Error(problems.empty() ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument, msg);
  }

  // Meta tensors get real storage now; the caller's dict sees them at finish().
  for (auto& t : impl_->targets) {
    if (t.is_value || !t.local.is_meta()) continue;
    t.local = Tensor::zeros(t.local.shape(), t.local.dtype(), Device::kCpu);
    t.allocated = true;
    if (t.leaf.value.is_dtensor()) {
      const DTensor& dt = t.leaf.value.as<DTensor>();
      t.replacement = DTensor(t.local, dt.device_mesh(), dt.placements(), dt.shape());
    } else {
      t.replacement = t.local;
    }
  }
}

LoadPlan DefaultLoadPlanner::create_local_plan() {
  LoadPlan plan;
  for (const auto& t : impl_->targets) {
    if (t.is_value) {
      ReadItem item;
      item.fqn = t.ckpt_key;
      item.type = ReadItemType::kValue;
      plan.items.push_back(std::move(item));
      continue;
    }
    if (t.local.numel() == 0) continue;
    const TensorMeta& tm = metadata_->tensors.at(t.ckpt_key);
    const Shape& off = t.global_offset;
    const Shape& len = t.local.shape();
    const size_t nd = len.size();
    for (size_t c = 0; c < tm.chunks.size(); ++c) {
      const ChunkMeta& chunk = tm.chunks[c];
      if (chunk.offsets.size() != nd || chunk.sizes.size() != nd) {
        throw Error(ErrorCode::kCorrupt, "checkpoint chunk " + std::to_string(c) + " of '" + t.ckpt_key +
                                             "' has " + std::to_string(chunk.sizes.size()) +
                                             " dims, the tensor " + std::to_string(nd));
      }
      // Most chunks of a sharded tensor miss this rank's box: test before allocating.
      bool overlap = true;
      for (size_t d = 0; d < nd && overlap; ++d) {
        overlap = std::max(off[d], chunk.offsets[d]) < std::min(off[d] + len[d], chunk.offsets[d] + chunk.sizes[d]);
      }
      if (!overlap) continue;
      ReadItem item;
      item.storage_offsets.resize(nd);
      item.dest_offsets.resize(nd);
      item.lengths.resize(nd);
      for (size_t d = 0; d < nd && overlap; ++d) {
        int64_t lo = std::max(off[d], chunk.offsets[d]);
        int64_t hi = std::min(off[d] + len[d], chunk.offsets[d] + chunk.sizes[d]);
        if (hi <= lo) {
          overlap = false;
          break;
        }
        item.storage_offsets[d] = lo - chunk.offsets[d];
        item.dest_offsets[d] = lo - off[d];
        item.lengths[d] = hi - lo;
      }
      if (!overlap) continue;
      item.fqn = t.ckpt_key;
      item.type = ReadItemType::kTensor;
      item.chunk_index = c;
      plan.items.push_back(std::move(item));
    }
  }
  return plan;
}

Tensor DefaultLoadPlanner::resolve_tensor(const ReadItem& item) {
  Impl::Target& t = impl_->target(item);
  Tensor view = t.local;
  if (item.dest_offsets.size() != static_cast<size_t>(view.dim()) || item.lengths.size() != item.dest_offsets.size()) {
    throw Error(ErrorCode::kInternal, "read item of '" + item.fqn + "' has the wrong number of dims");
  }
  for (size_t d = 0; d < item.lengths.size(); ++d) {
    view = view.narrow(static_cast<int64_t>(d), item.dest_offsets[d], item.lengths[d]);
  }
  return view;
}

void DefaultLoadPlanner::load_value(const ReadItem& item, const Bytes& bytes) {
  Impl::Target& t = impl_->target(item);
  auto vm = metadata_->values.find(item.fqn);
  if (vm == metadata_->values.end()) {
    throw Error(ErrorCode::kInternal, "value '" + item.fqn + "' is not in the checkpoint metadata");
  }
  t.loaded = decode_value(vm->second.kind, bytes, item.fqn);
}

void DefaultLoadPlanner::finish() {
  for (auto& t : impl_->targets) {
    if (t.is_value) {
      if (t.loaded) t.leaf.slot.assign(std::move(*t.loaded));
    } else if (t.allocated) {
      t.leaf.slot.assign(t.replacement);
    }
  }
  // Inner statefuls first: an outer one's state may hold an inner one.
  for (auto it = impl_->statefuls.rbegin(); it != impl_->statefuls.rend(); ++it) {
    it->object->load_state_dict(it->state);
  }
}

}  // namespace dcpp
