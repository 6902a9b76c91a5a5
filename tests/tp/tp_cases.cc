#include "tp/tp_cases.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "dcpp/error.h"
#include "dcpp/testing/models.h"
#include "dcpp/optim.h"
#include "dcpp/tp.h"

namespace dcpp::testing {

namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;

const ParallelizePlan kMlpPlan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};
const ParallelizePlan kUnevenPlan = {
    {"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}, {"net3", ColwiseParallel{}}};

Tensor rand_tensor(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1, 1, gen);
}

// This rank's shard of the last dim of a replicated tensor.
Tensor last_dim_shard(const Tensor& t, const DeviceMesh& mesh) {
  ChunkExtent e = shard_extent(t.size(-1), mesh.size(), mesh.coordinate()[0]);
  return t.narrow(t.dim() - 1, e.length == 0 ? t.size(-1) : e.offset, e.length);
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_TRUE(allclose(got, want, kRtol, kAtol)) << what << ": max |diff| " << max_abs_diff(got, want);
}

// Full parameters of a TP model (collective) by name.
std::map<std::string, Tensor> full_params(Module& m, bool grads) {
  std::map<std::string, Tensor> out;
  for (auto& [name, p] : m.named_parameters()) {
    if (grads)
      out[name] = p->is_distributed() ? p->grad_dtensor().full_tensor() : p->grad_local();
    else
      out[name] = p->is_distributed() ? p->dtensor().full_tensor() : p->local();
  }
  return out;
}

template <typename Model>
void compare_model(const CommPtr& world, const ParallelizePlan& plan, int64_t in, int64_t out, bool sharded_output,
                   uint64_t seed, const std::string& label) {
  SCOPED_TRACE(label);
  DeviceMesh mesh = init_device_mesh(world, "cpu", {world->size()});
  auto run = [&](auto make_opt, const std::string& opt_name) {
    SCOPED_TRACE(opt_name);
    Model ref;
    Model tp;
    parallelize_module(tp, mesh, plan);
    for (auto& [name, p] : tp.named_parameters()) EXPECT_TRUE(p->is_distributed()) << name;
    auto ref_opt = make_opt(ref);
    auto tp_opt = make_opt(tp);
    for (int step = 0; step < 3; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const int64_t batch = 3 + step;
      Tensor x = rand_tensor({batch, in}, seed + 2 * step);
      Tensor gy = rand_tensor({batch, out}, seed + 2 * step + 1);
      ref_opt->zero_grad();
      tp_opt->zero_grad();
      Tensor y_ref = ref.forward(x);
      Tensor y_tp = tp.forward(x);
      if (sharded_output)  // Colwise last layer: PyTorch's default output layout Shard(-1)
        y_tp = DTensor::from_local(y_tp, mesh, {Shard{-1}}, y_ref.shape()).full_tensor();
      expect_close(y_tp, y_ref, "forward output");
      Tensor gx_ref = ref.backward(gy);
      Tensor gx_tp = tp.backward(sharded_output ? last_dim_shard(gy, mesh).contiguous() : gy);
      expect_close(gx_tp, gx_ref, "input gradient");
      auto g_ref = full_params(ref, true);
      for (auto& [name, g] : full_params(tp, true)) expect_close(g, g_ref.at(name), "grad of " + name);
      ref_opt->step();
      tp_opt->step();
      auto p_ref = full_params(ref, false);
      for (auto& [name, p] : full_params(tp, false)) expect_close(p, p_ref.at(name), "param " + name);
    }
    // Optimizer state of a DTensor parameter is a DTensor with its placements.
    StateDict st = tp_opt->state_dict().at("state").dict();
    for (auto& [name, p] : tp.named_parameters())
      for (auto& [k, v] : st.at(name).dict())
        if (k != "step") {
          ASSERT_TRUE(v.is_dtensor()) << name << "." << k;
          EXPECT_TRUE(std::get<DTensor>(v.variant()).placements() == p->dtensor().placements()) << name << "." << k;
        }
  };
  run([](Module& m) { return std::make_unique<SGD>(m, SGDOptions{.lr = 0.25, .momentum = 0.9}); }, "SGD");
  run([](Module& m) { return std::make_unique<AdamW>(m, AdamWOptions{.lr = 0.05, .weight_decay = 0.01}); }, "AdamW");
}

struct LocalShapeRow {
  int world;
  std::map<std::string, std::vector<Shape>> shapes;  // per rank
};

}  // namespace

void tp_matches_single_rank_case(const CommPtr& world, uint64_t seed) {
  compare_model<MLPModule>(world, kMlpPlan, 10, 10, false, seed, "MLPModule");
  compare_model<UnevenShardedModel>(world, kUnevenPlan, 5, 1, true, seed + 100, "UnevenShardedModel");
}

void tp_meta_case(const CommPtr& world) {
  const int n = world->size(), r = world->rank();
  // Literal local shapes: c = ceil(S/n), trailing ranks may hold nothing.
  const std::vector<LocalShapeRow> uneven = {
      {1, {{"net1.weight", {{10, 5}}}, {"net1.bias", {{10}}}, {"net2.weight", {{15, 10}}}, {"net2.bias", {{15}}},
           {"net3.weight", {{1, 15}}}, {"net3.bias", {{1}}}}},
      {2, {{"net1.weight", {{5, 5}, {5, 5}}}, {"net1.bias", {{5}, {5}}}, {"net2.weight", {{15, 5}, {15, 5}}},
           {"net2.bias", {{15}, {15}}}, {"net3.weight", {{1, 15}, {0, 15}}}, {"net3.bias", {{1}, {0}}}}},
      {3, {{"net1.weight", {{4, 5}, {4, 5}, {2, 5}}}, {"net1.bias", {{4}, {4}, {2}}},
           {"net2.weight", {{15, 4}, {15, 4}, {15, 2}}}, {"net2.bias", {{15}, {15}, {15}}},
           {"net3.weight", {{1, 15}, {0, 15}, {0, 15}}}, {"net3.bias", {{1}, {0}, {0}}}}},
      {4, {{"net1.weight", {{3, 5}, {3, 5}, {3, 5}, {1, 5}}}, {"net1.bias", {{3}, {3}, {3}, {1}}},
           {"net2.weight", {{15, 3}, {15, 3}, {15, 3}, {15, 1}}}, {"net2.bias", {{15}, {15}, {15}, {15}}},
           {"net3.weight", {{1, 15}, {0, 15}, {0, 15}, {0, 15}}}, {"net3.bias", {{1}, {0}, {0}, {0}}}}},
      {5, {{"net1.weight", {{2, 5}, {2, 5}, {2, 5}, {2, 5}, {2, 5}}}, {"net1.bias", {{2}, {2}, {2}, {2}, {2}}},
           {"net2.weight", {{15, 2}, {15, 2}, {15, 2}, {15, 2}, {15, 2}}},
           {"net2.bias", {{15}, {15}, {15}, {15}, {15}}},
           {"net3.weight", {{1, 15}, {0, 15}, {0, 15}, {0, 15}, {0, 15}}}, {"net3.bias", {{1}, {0}, {0}, {0}, {0}}}}},
  };
  const std::map<std::string, Shape> uneven_global = {{"net1.weight", {10, 5}}, {"net1.bias", {10}},
                                                      {"net2.weight", {15, 10}}, {"net2.bias", {15}},
                                                      {"net3.weight", {1, 15}}, {"net3.bias", {1}}};
  // MLPModule: 16 over 5 ranks is 4,4,4,4,0; over 3 it is 6,6,4.
  const std::map<int, std::vector<int64_t>> mlp_rows = {
      {1, {16}}, {2, {8, 8}}, {3, {6, 6, 4}}, {4, {4, 4, 4, 4}}, {5, {4, 4, 4, 4, 0}}};

  DeviceMesh mesh = init_device_mesh(world, "cpu", {n});
  UnevenShardedModel meta(Device::kMeta);
  parallelize_module(meta, mesh, kUnevenPlan);
  const LocalShapeRow* row = nullptr;
  for (const auto& x : uneven)
    if (x.world == n) row = &x;
  if (row) {
    StateDict sd = meta.state_dict();
    EXPECT_EQ(sd.size(), 6u);
    for (auto& [name, v] : sd) {
      ASSERT_TRUE(v.is_dtensor()) << name;
      const DTensor& d = v.as<DTensor>();
      EXPECT_TRUE(d.is_meta()) << name;
      EXPECT_EQ(d.to_local().storage(), nullptr) << name;
      EXPECT_EQ(d.shape(), uneven_global.at(name)) << name;
      EXPECT_EQ(d.to_local().shape(), row->shapes.at(name)[r]) << name << " on rank " << r;
    }
  }
  MLPModule mlp_meta(Device::kMeta);
  parallelize_module(mlp_meta, mesh, kMlpPlan);
  if (mlp_rows.count(n)) {
    EXPECT_EQ(mlp_meta.net1().weight()->local().shape(), (Shape{mlp_rows.at(n)[r], 10}));
    EXPECT_EQ(mlp_meta.net2().weight()->local().shape(), (Shape{10, mlp_rows.at(n)[r]}));
    EXPECT_EQ(mlp_meta.net2().bias()->local().shape(), (Shape{10}));
  }

  // Materialise the meta model from a real TP model's state dict (assign),
  // as the seed's test does after loading a checkpoint in place.
  UnevenShardedModel real;
  parallelize_module(real, mesh, kUnevenPlan);
  StateDict loaded = real.state_dict().clone();
  meta.load_state_dict(loaded, true, /*assign=*/true);
  for (auto& [name, p] : meta.named_parameters()) {
    EXPECT_FALSE(p->is_meta()) << name;
    EXPECT_TRUE(p->local().shares_storage_with(loaded.at(name).as<DTensor>().to_local()) || p->local().numel() == 0)
        << name;
  }
  Tensor x = rand_tensor({4, 5}, 99);
  Tensor y_meta = DTensor::from_local(meta.forward(x), mesh, {Shard{-1}}, Shape{4, 1}).full_tensor();
  Tensor y_real = DTensor::from_local(real.forward(x), mesh, {Shard{-1}}, Shape{4, 1}).full_tensor();
  EXPECT_TRUE(equal(y_meta, y_real));

  // Misuse is reported, not ignored.
  EXPECT_THROW(parallelize_module(real, mesh, kUnevenPlan), Error);                        // twice
  UnevenShardedModel m2;
  EXPECT_THROW(parallelize_module(m2, mesh, {{"relu", ColwiseParallel{}}}), Error);        // not a Linear
  EXPECT_THROW(parallelize_module(m2, mesh, {{"net9", RowwiseParallel{}}}), Error);        // no such module
}

void tp_state_dict_case(const CommPtr& world, uint64_t seed) {
  const int n = world->size();
  DeviceMesh mesh = init_device_mesh(world, "cpu", {n});
  MLPModule single;
  MLPModule tp;
  parallelize_module(tp, mesh, kMlpPlan);
  StateDict sd = tp.state_dict();
  EXPECT_EQ(sd.keys(), single.state_dict().keys());
  EXPECT_EQ(std::get<Shard>(sd.at("net1.weight").as<DTensor>().placements()[0]).dim, 0);
  EXPECT_EQ(std::get<Shard>(sd.at("net2.weight").as<DTensor>().placements()[0]).dim, 1);
  EXPECT_TRUE(std::holds_alternative<Replicate>(sd.at("net2.bias").as<DTensor>().placements()[0]));
  // The dict aliases the DTensor parameters.
  EXPECT_TRUE(sd.at("net1.weight").as<DTensor>().to_local().shares_storage_with(tp.net1().weight()->local()));

  // Load a single-rank state dict of other values into the TP model: each
  // rank takes its piece of the full tensors.
  manual_seed(seed);
  MLPModule other;
  for (auto& [name, p] : other.named_parameters()) p->local().copy_from(rand_tensor(p->shape(), seed + name.size()));
  tp.load_state_dict(other.state_dict());
  for (auto& [name, p] : tp.named_parameters())
    EXPECT_TRUE(equal(p->dtensor().full_tensor(), other.state_dict().at(name).as<Tensor>())) << name;
  // Load a DTensor state dict with other placements (resharded on load).
  StateDict resharded;
  for (auto& [name, v] : other.state_dict())
    resharded.set(name, distribute_tensor(v.as<Tensor>(), mesh, {name.find("bias") != std::string::npos ? Placement(Replicate{}) : Placement(Shard{0})}));
  MLPModule tp2;
  parallelize_module(tp2, mesh, kMlpPlan);
  tp2.load_state_dict(resharded);
  for (auto& [name, p] : tp2.named_parameters())
    EXPECT_TRUE(equal(p->dtensor().full_tensor(), other.state_dict().at(name).as<Tensor>())) << name;
  // And the TP state dict into a single-rank model (gathered).
  single.load_state_dict(tp2.state_dict());
  for (auto& [name, p] : single.named_parameters())
    EXPECT_TRUE(equal(p->local(), other.state_dict().at(name).as<Tensor>())) << name;
}

}  // namespace dcpp::testing
