// Neural-network modules: a Module tree with dotted parameter names, Linear,
// ReLU and Sequential, written with explicit forward and backward passes.
//
// A Module owns its parameters and buffers through shared Parameter handles;
// state dicts, optimizers and tensor parallelism hold the same handles, so a
// parameter replaced by load_state_dict(assign=true) or parallelize_module is
// seen by all of them. A parameter's value is a Tensor, or a DTensor once it
// has been distributed; its gradient is of the same kind. There is no general
// autograd: forward(x) caches what backward needs, backward(grad_out) adds
// parameter gradients and returns the input gradient. Compute runs in the
// parameters' dtype (float32 or float64). Modules built on the meta device
// hold shapes only and cannot run forward.
// Thread-safety: a module belongs to one rank (thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dcpp/dtensor.h"
#include "dcpp/state_dict.h"
#include "dcpp/tensor.h"

namespace dcpp {

// The per-thread default generator (one per rank, as each PyTorch process has
// its own), used by module initialisation when no generator is passed.
Generator& default_generator();
// torch.manual_seed: reseeds this thread's default generator.
void manual_seed(uint64_t seed);

// A trainable parameter or a buffer: a Tensor or DTensor value plus its gradient.
class Parameter {
 public:
  explicit Parameter(Tensor value, bool is_buffer = false);
  explicit Parameter(DTensor value, bool is_buffer = false);

  bool is_buffer() const { return is_buffer_; }
  bool is_distributed() const { return dvalue_.defined(); }
  bool is_meta() const { return local().is_meta(); }
  DType dtype() const { return local().dtype(); }
  // The global shape (the tensor's shape when not distributed).
  Shape shape() const;

  // What this rank computes with: the whole tensor, or its local shard.
  Tensor& local() { return is_distributed() ? dvalue_.local() : value_; }
  const Tensor& local() const { return is_distributed() ? dvalue_.to_local() : value_; }
  // The distributed value; throws Error(kInvalidArgument) when not distributed.
  const DTensor& dtensor() const;
  // A Tensor or DTensor sharing this parameter's storage.
  StateValue value() const;
  // Replaces the value (gradient dropped).
  void assign(Tensor value);
  void assign(DTensor value);

  bool has_grad() const { return grad_.defined(); }
  // The local gradient (shape of local()); undefined before the first backward.
  Tensor& grad_local() { return grad_; }
  const Tensor& grad_local() const { return grad_; }
  // The gradient as a DTensor with the value's mesh and placements (aliasing).
  DTensor grad_dtensor() const;
  // A Tensor or DTensor gradient sharing storage; null when there is none.
  StateValue grad() const;
  // grad += g (g has the local shape); creates the gradient on first use.
  void accumulate_grad(const Tensor& g);
  void zero_grad(bool set_to_none = true);

 private:
  Tensor value_;
  DTensor dvalue_;
  Tensor grad_;
  bool is_buffer_ = false;
};
using ParameterPtr = std::shared_ptr<Parameter>;
using NamedParameter = std::pair<std::string, ParameterPtr>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // "Linear", "ReLU", ... (for error messages).
  virtual std::string type_name() const = 0;
  // Caches what backward needs.
  virtual Tensor forward(const Tensor& x) = 0;
  // Accumulates parameter gradients; returns the gradient of the last forward's input.
  virtual Tensor backward(const Tensor& grad_out) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- tree ----
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module (name "") and every descendant, pre-order, with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules();
  // A descendant by dotted name ("" is this module); Error(kNotFound) naming it otherwise.
  Module& get_submodule(const std::string& dotted_name);

  // Own and descendants' trainable parameters in registration order, dotted names.
  std::vector<NamedParameter> named_parameters();
  std::vector<ParameterPtr> parameters();
  std::vector<NamedParameter> named_buffers();
  // This module's own entries (not descendants').
  const std::vector<NamedParameter>& own_parameters() const { return params_; }
  const std::vector<NamedParameter>& own_buffers() const { return buffers_; }

  // Flat dict of dotted keys → Tensor/DTensor values ALIASING the parameters
  // and buffers (own entries first, then children, as PyTorch orders them).
  StateDict state_dict();
  // strict: missing or unexpected keys are Error(kInvalidArgument) listing
  // every one. assign=false copies into the existing values (resharding a
  // DTensor or taking this rank's piece of a full tensor when needed; a meta
  // parameter is left as it is, as in PyTorch); assign=true makes the dict's
  // tensors the parameters. Everything is validated before anything changes.
  // Collective when a DTensor value must be redistributed.
  void load_state_dict(const StateDict& state_dict, bool strict = true, bool assign = false);

  void zero_grad(bool set_to_none = true);

 protected:
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  ParameterPtr register_parameter(const std::string& name, Tensor value);
  ParameterPtr register_buffer(const std::string& name, Tensor value);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool buffers, std::vector<NamedParameter>& out) const;
  void collect_state(const std::string& prefix, std::vector<NamedParameter>& out) const;

  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<NamedParameter> params_;
  std::vector<NamedParameter> buffers_;
};

struct ModuleOptions {
  Device device = Device::kCpu;
  DType dtype = DType::kFloat32;  // float32 or float64
};

// How a Linear's activations are laid out over a mesh; installed by tensor
// parallelism (dcpp/tp.h). Each step maps plain local tensors, so a layer
// without hooks is an ordinary Linear. Order: y = input(x) · Wᵀ →
// reduce_output → + bias → output; backward runs the inverse steps.
class LinearHooks {
 public:
  virtual ~LinearHooks() = default;
  virtual Tensor input(const Tensor& x) = 0;             // to the layout the local matmul needs
  virtual Tensor reduce_output(const Tensor& y) = 0;     // local matmul result → before the bias
  virtual Tensor output(const Tensor& y) = 0;            // after the bias → what the caller sees
  virtual Tensor grad_output(const Tensor& g) = 0;       // caller's gradient → layout after the bias
  virtual Tensor grad_input(const Tensor& gx) = 0;       // local input gradient → caller's input layout
};

class Linear : public Module {
 public:
  // PyTorch's default init: weight and bias U(-1/sqrt(in), 1/sqrt(in)), weight
  // drawn first (kaiming_uniform with a = sqrt(5)). Nothing is drawn on meta.
  Linear(int64_t in_features, int64_t out_features, bool bias = true, ModuleOptions options = {});
  Linear(int64_t in_features, int64_t out_features, bool bias, ModuleOptions options, Generator& gen);

  std::string type_name() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }  // null without bias
  void set_hooks(std::shared_ptr<LinearHooks> hooks) { hooks_ = std::move(hooks); }
  const std::shared_ptr<LinearHooks>& hooks() const { return hooks_; }

 private:
  void init(bool bias, ModuleOptions options, Generator& gen);

  int64_t in_features_;
  int64_t out_features_;
  ParameterPtr weight_;
  ParameterPtr bias_;
  std::shared_ptr<LinearHooks> hooks_;
  Tensor input_;  // the (hooked) input of the last forward
};

class ReLU : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;

 private:
  Tensor input_;
};

// Children named "0", "1", ... run in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return named_children().size(); }
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad_out) override;
};

}  // namespace dcpp
