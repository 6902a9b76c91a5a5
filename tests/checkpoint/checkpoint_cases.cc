#include "checkpoint/checkpoint_cases.h"

#include <gtest/gtest.h>

#include <ostream>
#include <optional>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/models.h"
#include "dcpp/nn.h"
#include "dcpp/optim.h"
#include "dcpp/tp.h"

namespace dcpp::testing {

namespace {

// The local view of a DTensor's value, or the tensor itself.
Tensor local_of(const StateValue& v) {
  if (v.is_dtensor()) return v.as<DTensor>().to_local();
  return v.as<Tensor>();
}

bool is_meta(const StateValue& v) { return local_of(v).is_meta(); }

// `full` narrowed to the box [offsets, offsets + sizes).
Tensor box_of(const Tensor& full, const Shape& offsets, const Shape& sizes) {
  Tensor t = full;
  for (size_t d = 0; d < sizes.size(); ++d) t = t.narrow(static_cast<int64_t>(d), offsets[d], sizes[d]);
  return t;
}

// A DTensor holding this rank's piece of `full`, cut with the dtensor
// layer's chunk math (docs/design.md §2), in fresh storage.
DTensor shard_of(const Tensor& full, const DeviceMesh& mesh, const Placements& placements) {
  LocalChunk lc = compute_local_shape_and_global_offset(full.shape(), mesh.shape(), mesh.coordinate(), placements);
  return DTensor(box_of(full, lc.global_offset, lc.local_shape).clone(), mesh, placements, full.shape());
}

}  // namespace

// ===================== the seed's tests =====================

void case_tp_checkpoint(const CommPtr& comm, const std::string& dir) {
  const int world = comm->size();
  DeviceMesh tp_mesh = init_device_mesh(comm, "cpu", {world});

  MLPModule model(Device::kCpu);
  ParallelizePlan plan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};
  parallelize_module(model, tp_mesh, plan);
  SGD optimizer(model, SGDOptions{.lr = 0.25});
  StateDict original_state_dict = model.state_dict().clone();

  {
    FileSystemWriter writer(dir);
    save(original_state_dict, writer, SaveOptions{.planner = std::make_shared<DefaultSavePlanner>()});
  }

  // Update the parameters so model.state_dict() differs from original_state_dict.
  manual_seed(0);
  Tensor inp = Tensor::uniform({20, 10}, 0, 1, default_generator());
  Tensor output = model(inp);
  model.backward(Tensor::full(output.shape(), 1.0));  // output.sum().backward()
  optimizer.step();
  StateDict state_dict = model.state_dict();

  ASSERT_EQ(original_state_dict.size(), state_dict.size());
  ASSERT_EQ(original_state_dict.keys(), state_dict.keys());
  // The current parameters differ from original_state_dict before loading.
  for (const auto& [key, param1] : original_state_dict) {
    const StateValue& param2 = state_dict.at(key);
    EXPECT_FALSE(equal(local_of(param1), local_of(param2))) << key << " did not change on rank " << comm->rank();
  }

  {
    FileSystemReader reader(dir);
    load(state_dict, reader, LoadOptions{.planner = std::make_shared<DefaultLoadPlanner>()});
  }

  // Now the current parameters equal original_state_dict...
  for (const auto& [key, param1] : original_state_dict) {
    EXPECT_TRUE(equal(local_of(param1), local_of(state_dict.at(key))))
        << key << " not restored on rank " << comm->rank();
  }
  // ...and they were loaded in place: the model's own parameter storage holds them.
  for (const auto& [name, param] : model.named_parameters()) {
    ASSERT_TRUE(original_state_dict.contains(name)) << name;
    EXPECT_TRUE(equal(param->local(), local_of(original_state_dict.at(name))))
        << "the model's parameter " << name << " does not hold the loaded values on rank " << comm->rank();
    EXPECT_TRUE(param->local().shares_storage_with(local_of(state_dict.at(name)))) << name;
    EXPECT_FALSE(param->local().shares_storage_with(local_of(original_state_dict.at(name)))) << name;
  }
}

void case_tp_checkpoint_load_on_meta_device(const CommPtr& comm, const std::string& dir) {
  const int world = comm->size();
  DeviceMesh tp_mesh = init_device_mesh(comm, "cpu", {world});

  UnevenShardedModel model(Device::kCpu);
  ParallelizePlan parallelize_plan = {
      {"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}, {"net3", ColwiseParallel{}}};
  parallelize_module(model, tp_mesh, parallelize_plan);
  StateDict original_state_dict{{"model", model.state_dict()}};

  save(original_state_dict, dir);

  UnevenShardedModel model2(Device::kMeta);
  parallelize_module(model2, tp_mesh, parallelize_plan);
  StateDict model2_sd_before_load = model2.state_dict();
  StateDict state_dict_to_load{{"model", model2_sd_before_load}};

  load(state_dict_to_load, dir);
  // In-place loading: state_dict_to_load["model"] is still model2_sd_before_load.
  EXPECT_TRUE(state_dict_to_load.at("model").dict().is(model2_sd_before_load));

  model2.load_state_dict(state_dict_to_load.at("model").dict(), /*strict=*/true, /*assign=*/true);
  StateDict state_dict_after_load{{"model", model2.state_dict()}};

  const StateDict& original = original_state_dict.at("model").dict();
  const StateDict& to_load = state_dict_to_load.at("model").dict();
  const StateDict& after_load = state_dict_after_load.at("model").dict();
  EXPECT_EQ(original.size(), to_load.size());
  EXPECT_EQ(original.size(), after_load.size());

  for (const auto& [name, param] : original) {
    const StateValue& param_to_load = to_load.at(name);
    const StateValue& param_after_load = after_load.at(name);
    // assertEqual does not look at meta DTensors, so check the device first.
    EXPECT_FALSE(is_meta(param_to_load)) << name;
    EXPECT_FALSE(is_meta(param_after_load)) << name;
    EXPECT_TRUE(equal(local_of(param), local_of(param_to_load))) << name << " on rank " << comm->rank();
    EXPECT_TRUE(equal(local_of(param), local_of(param_after_load))) << name << " on rank " << comm->rank();
  }
  // Nothing of the model stays on meta.
  for (const auto& [name, p] : model2.named_parameters()) EXPECT_FALSE(p->is_meta()) << name;
}

// ===================== resharding =====================

std::string ReshardLayout::name() const {
  std::string s;
  for (size_t i = 0; i < mesh_shape.size(); ++i) s += (i ? "x" : "") + std::to_string(mesh_shape[i]);
  return s;
}

void PrintTo(const ReshardLayout& layout, std::ostream* os) { *os << "mesh " << layout.name(); }

std::vector<ReshardLayout> reshard_layouts() {
  return {{1, {1}}, {2, {2}}, {3, {3}}, {4, {4}}, {5, {5}}, {4, {2, 2}}};
}

namespace {

struct TensorSpec {
  const char* name;
  Shape shape;
  DType saved;
  DType loaded;
};

const std::vector<TensorSpec>& reshard_specs() {
  static const std::vector<TensorSpec> specs = {
      {"r1_f32", {13}, DType::kFloat32, DType::kFloat32},
      {"r2_f32", {7, 5}, DType::kFloat32, DType::kFloat32},
      {"r3_f32", {5, 3, 7}, DType::kFloat32, DType::kFloat32},
      {"r2_bf16", {11, 3}, DType::kBFloat16, DType::kBFloat16},
      {"r1_f16", {9}, DType::kFloat16, DType::kFloat16},
      {"r2_i64", {6, 5}, DType::kInt64, DType::kInt64},
      {"r2_bool", {7, 3}, DType::kBool, DType::kBool},
      {"zero_size", {0, 4}, DType::kFloat32, DType::kFloat32},
      {"tiny", {3}, DType::kFloat32, DType::kFloat32},  // empty shards beyond 3 ranks
      {"r3_i64", {3, 1, 5}, DType::kInt64, DType::kInt64},
      {"r3_f16", {2, 5, 3}, DType::kFloat16, DType::kFloat16},
      {"to_bf16", {9, 7}, DType::kFloat32, DType::kBFloat16},  // the one conversion
  };
  return specs;
}

// The full tensor of spec i, from its own seeded stream.
Tensor expected_full(size_t i, uint64_t seed) {
  const TensorSpec& s = reshard_specs()[i];
  Generator gen(seed * 1000003 + i);
  switch (s.saved) {
    case DType::kInt64: return Tensor::uniform(s.shape, -1000, 1000, gen, DType::kInt64);
    case DType::kBool: return Tensor::uniform(s.shape, 0, 2, gen, DType::kInt64).to(DType::kBool);
    default: return Tensor::uniform(s.shape, -4, 4, gen, s.saved);
  }
}

// Placements for tensor i in `layout` (nullopt: a plain tensor), varied over
// tensors, layouts and the save/load side so that the matrix meets every
// placement on both sides.
std::optional<Placements> placements_for(const ReshardLayout& layout, size_t i, bool load_side) {
  const int64_t ndim = static_cast<int64_t>(reshard_specs()[i].shape.size());
  const Shard s1 = ndim > 1 ? Shard{1} : Shard{0};
  const size_t k = i * 7 + static_cast<size_t>(layout.world) * 3 + (layout.mesh_shape.size() == 2 ? 1 : 0) +
                   (load_side ? 2 : 0);
  if (layout.mesh_shape.size() == 1) {
    switch (k % 5) {
      case 0: return Placements{Shard{0}};
      case 1: return Placements{s1};
      case 2: return Placements{Shard{-1}};
      case 3: return Placements{Replicate{}};
      default: return std::nullopt;
    }
  }
  switch (k % 6) {
    case 0: return Placements{Shard{0}, s1};
    case 1: return Placements{Shard{0}, Shard{0}};
    case 2: return Placements{Replicate{}, Shard{-1}};
    case 3: return Placements{Shard{-1}, Replicate{}};
    case 4: return Placements{Replicate{}, Replicate{}};
    default: return std::nullopt;
  }
}

std::string describe(const std::optional<Placements>& p) {
  if (!p) return "plain";
  std::string s = "[";
  for (size_t i = 0; i < p->size(); ++i) s += (i ? ", " : "") + placement_to_string((*p)[i]);
  return s + "]";
}

}  // namespace

void case_reshard_save(const CommPtr& comm, const std::string& dir, const ReshardLayout& layout, uint64_t seed) {
  ASSERT_EQ(comm->size(), layout.world);
  DeviceMesh mesh = init_device_mesh(comm, "cpu", layout.mesh_shape);
  StateDict sd;
  const auto& specs = reshard_specs();
  for (size_t i = 0; i < specs.size(); ++i) {
    Tensor full = expected_full(i, seed);
    auto placements = placements_for(layout, i, false);
    if (placements) {
      sd.set(specs[i].name, shard_of(full, mesh, *placements));
    } else {
      sd.set(specs[i].name, full);
    }
  }
  save(sd, dir, SaveOptions{.comm = comm});
}

void case_reshard_load(const CommPtr& comm, const std::string& dir, const ReshardLayout& layout, uint64_t seed) {
  ASSERT_EQ(comm->size(), layout.world);
  DeviceMesh mesh = init_device_mesh(comm, "cpu", layout.mesh_shape);
  const auto& specs = reshard_specs();
  StateDict sd;
  std::vector<std::optional<Placements>> chosen;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    auto placements = placements_for(layout, i, true);
    chosen.push_back(placements);
    Shape local_shape = s.shape;
    if (placements) {
      local_shape = compute_local_shape_and_global_offset(s.shape, mesh.shape(), mesh.coordinate(), *placements)
                        .local_shape;
    }
    // A sentinel everywhere, so a load that does nothing fails.
    Tensor target = Tensor::empty(local_shape, s.loaded);
    target.fill_(s.loaded == DType::kBool ? 1.0 : -7.0);
    if (placements) {
      sd.set(s.name, DTensor(target, mesh, *placements, s.shape));
    } else {
      sd.set(s.name, target);
    }
  }
  load(sd, dir, LoadOptions{.comm = comm});
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    Tensor expected = expected_full(i, seed).to(s.loaded);
    const StateValue& v = sd.at(s.name);
    SCOPED_TRACE(std::string(s.name) + " loaded as " + describe(chosen[i]) + " on mesh " + layout.name() +
                 ", rank " + std::to_string(comm->rank()));
    if (v.is_dtensor()) {
      const DTensor& dt = v.as<DTensor>();
      Tensor want = box_of(expected, dt.global_offset(), dt.to_local().shape()).contiguous();
      EXPECT_TRUE(equal(dt.to_local(), want)) << "local piece differs";
      EXPECT_TRUE(equal(dt.full_tensor(), expected)) << "full tensor differs";
    } else {
      EXPECT_TRUE(equal(v.as<Tensor>(), expected)) << "plain tensor differs";
    }
  }
}

// ===================== optimizer state =====================

namespace {

const AdamWOptions kAdamW{.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1};
const ParallelizePlan kMlpPlan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};

void train_steps(Module& model, Optimizer& optimizer, int from, int to) {
  for (int step = from; step < to; ++step) {
    Generator gen(7000 + step);
    Tensor x = Tensor::uniform({8, 10}, -1, 1, gen);
    optimizer.zero_grad();
    Tensor y = model(x);
    model.backward(Tensor::uniform(y.shape(), -1, 1, gen));
    optimizer.step();
  }
}

}  // namespace

void case_optim_train_save(const CommPtr& comm, const std::string& dir) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kCpu);
  parallelize_module(model, mesh, kMlpPlan);
  AdamW optimizer(model, kAdamW);
  train_steps(model, optimizer, 0, 3);
  auto [model_sd, optim_sd] = get_state_dict(model, optimizer);
  StateDict sd{{"model", model_sd}, {"optim", optim_sd}};
  save(sd, dir);
}

void case_optim_load_continue(const CommPtr& comm, const std::string& dir) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kCpu);
  parallelize_module(model, mesh, kMlpPlan);
  AdamW optimizer(model, kAdamW);
  auto [model_sd, optim_sd] = get_state_dict(model, optimizer);
  StateDict sd{{"model", model_sd}, {"optim", optim_sd}};
  load(sd, dir);
  set_state_dict(model, optimizer, sd.at("model").dict(), sd.at("optim").dict());
  train_steps(model, optimizer, 3, 6);

  // The same 6 steps uninterrupted on one rank.
  MLPModule reference(Device::kCpu);
  AdamW reference_optimizer(reference, kAdamW);
  train_steps(reference, reference_optimizer, 0, 6);

  auto ref_params = reference.named_parameters();
  auto params = model.named_parameters();
  ASSERT_EQ(params.size(), ref_params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(params[i].first, ref_params[i].first);
    Tensor full = params[i].second->is_distributed() ? params[i].second->dtensor().full_tensor()
                                                     : params[i].second->local();
    const Tensor& want = ref_params[i].second->local();
    EXPECT_TRUE(allclose(full, want, 1e-5, 1e-6))
        << params[i].first << " after resuming on " << comm->size() << " ranks: max |diff| "
        << max_abs_diff(full, want);
  }
  // And the run really moved away from the loaded point.
  MLPModule initial(Device::kCpu);
  EXPECT_FALSE(allclose(initial.net1().weight()->local(), ref_params[0].second->local(), 1e-5, 1e-6));
}

}  // namespace dcpp::testing
