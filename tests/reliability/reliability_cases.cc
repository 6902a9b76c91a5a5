#include "reliability/reliability_cases.h"

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <sstream>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/testing/models.h"
#include "dcpp/tp.h"

namespace dcpp::testing {

namespace {

// new = old * -1.5 + 0.25, computed per element in float64 (not through dcpp's kernels).
Tensor derive_new(const Tensor& old) {
  Tensor out = old.clone();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = static_cast<float>(static_cast<double>(p[i]) * -1.5 + 0.25);
  return out;
}

const ParallelizePlan& seed_plan() {
  static const ParallelizePlan plan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};
  return plan;
}

}  // namespace

const SeedStates& seed_states() {
  static const SeedStates states = [] {
    SeedStates s;
    MLPModule reference(Device::kCpu);  // one rank, no tensor parallelism
    for (const auto& [key, value] : reference.state_dict()) {
      Tensor full = value.as<Tensor>().clone();
      if (full.dtype() != DType::kFloat32) throw std::runtime_error("the seed model is float32");
      s.keys.push_back(key);
      s.old_full.emplace(key, full);
      s.new_full.emplace(key, derive_new(full));
    }
    return s;
  }();
  return states;
}

Tensor box_of(const Tensor& full, const Shape& offsets, const Shape& sizes) {
  Tensor t = full;
  for (size_t d = 0; d < sizes.size(); ++d) t = t.narrow(static_cast<int64_t>(d), offsets[d], sizes[d]);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous();
  Tensor cb = b.contiguous();
  return ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

StateDict seed_state_dict(const CommPtr& comm, Generation which) {
  const SeedStates& states = seed_states();
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kCpu);
  parallelize_module(model, mesh, seed_plan());
  StateDict out;
  for (const auto& [key, value] : model.state_dict()) {
    const DTensor& dt = value.as<DTensor>();
    LocalChunk lc = compute_local_shape_and_global_offset(dt.shape(), mesh.shape(), mesh.coordinate(),
                                                          dt.placements());
    // The TP model's shard must be the independent reference's box.
    Tensor old_box = box_of(states.old_full.at(key), lc.global_offset, lc.local_shape);
    if (!same_bytes(dt.to_local(), old_box)) {
      ADD_FAILURE() << "the parallelized seed model's " << key << " differs from the one-rank reference on rank "
                    << comm->rank();
    }
    const Tensor& full = which == Generation::kOld ? states.old_full.at(key) : states.new_full.at(key);
    out.set(key, DTensor(box_of(full, lc.global_offset, lc.local_shape).clone(), mesh, dt.placements(), dt.shape()));
  }
  return out;
}

std::vector<RankOutcome> save_seed(const std::string& path, int world, Generation which,
                                   const std::function<FileSystemPtr(int)>& fs_for_rank,
                                   FileSystemWriterOptions base) {
  std::vector<RankOutcome> outcomes(world);
  run_ranks(world, [&](CommPtr comm) {
    RankOutcome& mine = outcomes[comm->rank()];
    try {
      StateDict sd = seed_state_dict(comm, which);
      FileSystemWriterOptions options = base;
      if (fs_for_rank) options.filesystem = fs_for_rank(comm->rank());
      FileSystemWriter writer(path, options);
      save(sd, writer, SaveOptions{.comm = comm});
    } catch (const Error& e) {
      mine = {true, e.code(), e.what()};
    } catch (const std::exception& e) {
      mine = {true, ErrorCode::kInternal, std::string("not a dcpp::Error: ") + e.what()};
    }
  });
  return outcomes;
}

std::string_view found_name(Found found) {
  switch (found) {
    case Found::kOld: return "old";
    case Found::kNew: return "new";
    case Found::kMissing: return "missing";
    case Found::kIncomplete: return "incomplete";
    case Found::kLoadError: return "load error";
    case Found::kMixed: return "MIXED";
    case Found::kWrong: return "WRONG";
  }
  return "?";
}

std::string OutcomeCounts::summary() const {
  std::ostringstream os;
  os << total << " cases:";
  bool first = true;
  for (Found f : {Found::kOld, Found::kNew, Found::kMissing, Found::kIncomplete, Found::kLoadError, Found::kMixed,
                  Found::kWrong}) {
    os << (first ? " " : ", ") << found_name(f) << " " << count(f);
    first = false;
  }
  return os.str();
}

namespace {

// Which generation(s) `got` equals byte for byte: bit 0 old, bit 1 new.
int generations_matching(const Tensor& got, const Tensor& old_value, const Tensor& new_value) {
  return (same_bytes(got, old_value) ? 1 : 0) | (same_bytes(got, new_value) ? 2 : 0);
}

// Folds per-key match masks into one verdict.
Found verdict(int all_keys_mask, int any_neither) {
  if (any_neither) return Found::kWrong;
  if (all_keys_mask & 1) return Found::kOld;
  if (all_keys_mask & 2) return Found::kNew;
  return Found::kMixed;
}

}  // namespace

Inspection inspect_seed_checkpoint(const std::string& path, int world) {
  const SeedStates& states = seed_states();
  PosixFileSystem posix;
  // What a load reads: the path, or the checkpoint a crash mid-swap left aside.
  switch (checkpoint_state(posix, resolve_checkpoint_dir(posix, path))) {
    case CheckpointState::kMissing: return {Found::kMissing, "nothing at the path"};
    case CheckpointState::kEmpty:
    case CheckpointState::kIncomplete: return {Found::kIncomplete, "an incomplete checkpoint directory"};
    case CheckpointState::kForeign: return {Found::kWrong, "the path holds something that is not a dcpp checkpoint"};
    case CheckpointState::kComplete: break;
  }

  // 1. A collective load into sentinel-filled shards.
  std::mutex mutex;
  std::string load_error;
  int mask = 3;
  int neither = 0;
  std::string detail;
  run_ranks(world, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
    StateDict layout = seed_state_dict(comm, Generation::kOld);
    StateDict target;
    std::map<std::string, LocalChunk> chunks;
    for (const auto& [key, value] : layout) {
      const DTensor& dt = value.as<DTensor>();
      LocalChunk lc = compute_local_shape_and_global_offset(dt.shape(), mesh.shape(), mesh.coordinate(),
                                                            dt.placements());
      chunks.emplace(key, lc);
      target.set(key, DTensor(Tensor::full(lc.local_shape, 12345.0), mesh, dt.placements(), dt.shape()));
    }
    try {
      load(target, path, LoadOptions{.comm = comm});
    } catch (const Error& e) {
      std::lock_guard lock(mutex);
      if (load_error.empty()) load_error = e.what();
      return;
    }
    std::lock_guard lock(mutex);
    for (const auto& [key, value] : target) {
      const LocalChunk& lc = chunks.at(key);
      int m = generations_matching(value.as<DTensor>().to_local(),
                                   box_of(states.old_full.at(key), lc.global_offset, lc.local_shape),
                                   box_of(states.new_full.at(key), lc.global_offset, lc.local_shape));
      if (m == 0) {
        ++neither;
        detail += key + " on rank " + std::to_string(comm->rank()) + " equals neither generation; ";
      }
      mask &= m == 0 ? 3 : m;
      if (m != 3) detail += key + "@" + std::to_string(comm->rank()) + (m == 1 ? "=old " : m == 2 ? "=new " : " ");
    }
  });
  if (!load_error.empty()) return {Found::kLoadError, load_error};
  Found by_load = verdict(mask, neither);

  // 2. Every key whole, single process.
  int read_mask = 3;
  int read_neither = 0;
  try {
    CheckpointReader reader = open_checkpoint(path);
    for (const auto& key : states.keys) {
      int m = generations_matching(reader.read(key), states.old_full.at(key), states.new_full.at(key));
      if (m == 0) {
        ++read_neither;
        detail += "CheckpointReader: " + key + " equals neither generation; ";
      }
      read_mask &= m == 0 ? 3 : m;
    }
    if (reader.tensor_keys().size() != states.keys.size()) {
      ++read_neither;
      detail += "CheckpointReader lists " + std::to_string(reader.tensor_keys().size()) + " tensors; ";
    }
  } catch (const Error& e) {
    return {Found::kLoadError, std::string("load() succeeded but CheckpointReader failed: ") + e.what()};
  }
  Found by_read = verdict(read_mask, read_neither);
  if (by_load != by_read) {
    return {Found::kWrong, "load() found " + std::string(found_name(by_load)) + ", CheckpointReader found " +
                               std::string(found_name(by_read)) + ": " + detail};
  }
  return {by_load, detail};
}

}  // namespace dcpp::testing
