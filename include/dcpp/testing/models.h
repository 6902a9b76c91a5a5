// Models for tests, examples and `dcpp demo` (fixtures, not library API):
// the seed test's MLPModule (PyTorch's common_dtensor) and
// UnevenShardedModel, and GPTModel, a GPT-style stack of MLP blocks of any
// size with Megatron's tensor-parallel layout.
//
// MLPModule and UnevenShardedModel call manual_seed(5) first, so every rank
// builds identical parameters. Every model takes ModuleOptions for the device
// (meta for shape-only models) and the dtype (float64 for finite-difference
// references). The caller owns the module. Thread-safety: as Module.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dcpp/nn.h"
#include "dcpp/tp.h"

namespace dcpp {

// net1 Linear(10, 16), relu, net2 Linear(16, 10); forward net2(relu(net1(x))).
class MLPModule : public Module {
 public:
  explicit MLPModule(ModuleOptions options = {}, bool bias = true);
  explicit MLPModule(Device device) : MLPModule(ModuleOptions{device}) {}
  std::string type_name() const override { return "MLPModule"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;
  Linear& net1() { return *net1_; }
  Linear& net2() { return *net2_; }

 private:
  std::shared_ptr<Linear> net1_;
  std::shared_ptr<ReLU> relu_;
  std::shared_ptr<Linear> net2_;
};

// net1 Linear(5, 10), relu, net2 Linear(10, 15), net3 Linear(15, 1);
// forward net3(net2(relu(net1(x)))).
class UnevenShardedModel : public Module {
 public:
  explicit UnevenShardedModel(ModuleOptions options = {});
  explicit UnevenShardedModel(Device device) : UnevenShardedModel(ModuleOptions{device}) {}
  std::string type_name() const override { return "UnevenShardedModel"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;
  Linear& net1() { return *net1_; }
  Linear& net2() { return *net2_; }
  Linear& net3() { return *net3_; }

 private:
  std::shared_ptr<Linear> net1_;
  std::shared_ptr<ReLU> relu_;
  std::shared_ptr<Linear> net2_;
  std::shared_ptr<Linear> net3_;
};

struct GPTConfig {
  int layers = 8;
  int64_t hidden = 2048;
  int64_t ffn_hidden = 0;  // 0: 4 × hidden, as GPT
};

// One GPT layer's MLP with its residual connection:
// x + down_proj(relu(up_proj(x))), up_proj Linear(hidden, ffn_hidden),
// down_proj Linear(ffn_hidden, hidden).
class GPTBlock : public Module {
 public:
  GPTBlock(int64_t hidden, int64_t ffn_hidden, ModuleOptions options);
  std::string type_name() const override { return "GPTBlock"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;

 private:
  std::shared_ptr<Linear> up_proj_;
  std::shared_ptr<ReLU> act_;
  std::shared_ptr<Linear> down_proj_;
};

// `layers` GPTBlocks in a Sequential named "layers" (keys
// "layers.3.up_proj.weight"). On the CPU the constructor calls
// init_weights(seed); on meta it builds shapes only.
class GPTModel : public Module {
 public:
  explicit GPTModel(GPTConfig config, ModuleOptions options = {}, uint64_t seed = 0);
  std::string type_name() const override { return "GPTModel"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;
  const GPTConfig& config() const { return config_; }
  // Parameters of the whole (unsharded) model.
  int64_t num_parameters();

  // Gives every parameter its initial value, allocating the local part of
  // meta ones on the CPU (the meta → parallelize → init route a model too
  // large for one rank takes). Values follow PyTorch's default Linear bounds,
  // U(-1/sqrt(in), 1/sqrt(in)); each element is a hash of (seed, parameter
  // name, global index), so the model is the same whatever its sharding, and
  // no rank ever holds more than its own part.
  void init_weights(uint64_t seed);

 private:
  GPTConfig config_;
  std::shared_ptr<Sequential> layers_;
};

// Megatron's layout: every up_proj ColwiseParallel, every down_proj
// RowwiseParallel (one all-reduce per block forward, one backward).
inline ParallelizePlan gpt_tp_plan(const GPTConfig& config) {
  ParallelizePlan plan;
  for (int l = 0; l < config.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    plan.emplace_back(p + "up_proj", ColwiseParallel{});
    plan.emplace_back(p + "down_proj", RowwiseParallel{});
  }
  return plan;
}

}  // namespace dcpp
