// Optimizers over named parameters: SGD and AdamW with PyTorch's update
// formulas, and state dicts keyed by parameter NAMES so that optimizer state
// reshards with the model (flattened: state.net1.weight.exp_avg).
//
// An optimizer holds the modules' Parameter handles, so a parameter replaced
// by load_state_dict(assign=true) or parallelize_module is stepped in its new
// form. Per-parameter state is created lazily at the first step (or by
// init_state()); the state of a DTensor parameter is a DTensor with the same
// mesh and placements. state_dict() values alias the optimizer's state
// tensors; load_state_dict() copies (resharding when needed).
// Thread-safety: an optimizer belongs to one rank (thread).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dcpp/nn.h"
#include "dcpp/state_dict.h"

namespace dcpp {

class Optimizer {
 public:
  explicit Optimizer(std::vector<NamedParameter> params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient.
  virtual void step() = 0;
  void zero_grad(bool set_to_none = true);

  // {"state": {name: {...}}, "param_groups": [{hyper-parameters..., "params": [names]}]}
  StateDict state_dict();
  // Replaces the state and hyper-parameters. Error(kInvalidArgument) for an
  // unknown parameter name, a missing name in "params", or a shape mismatch.
  void load_state_dict(const StateDict& state_dict);
  // Creates the state of every parameter that has none (zeros, step 0), so a
  // freshly built optimizer offers tensors a checkpoint can be loaded into.
  void init_state();

  const std::vector<NamedParameter>& named_parameters() const { return params_; }
  // The state of one parameter (empty dict when not created yet).
  StateDict param_state(const std::string& name) const;

 protected:
  // Hyper-parameters as a param group (without "params").
  virtual StateDict group_options() const = 0;
  virtual void set_group_options(const StateDict& group) = 0;
  // Names of the tensor-valued entries of one parameter's state.
  virtual std::vector<std::string> state_tensor_names() const = 0;
  // Whether one parameter's state also carries a "step" count.
  virtual bool has_step() const = 0;
  // Creates a parameter's state (zeros, step 0) when it has none.
  StateDict& ensure_state(const std::string& name, const Parameter& p);
  StateDict* find_state(const std::string& name);

  std::vector<NamedParameter> params_;

 private:
  StateDict state_;  // name -> that parameter's state dict
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
};

// torch.optim.SGD: d = g + wd·p; buf = d (first step) or momentum·buf + (1-dampening)·d;
// d = nesterov ? d + momentum·buf : buf; p -= lr·d. State: "momentum_buffer" (momentum ≠ 0).
class SGD : public Optimizer {
 public:
  SGD(std::vector<NamedParameter> params, SGDOptions options);
  SGD(Module& module, SGDOptions options) : SGD(module.named_parameters(), options) {}
  void step() override;
  const SGDOptions& options() const { return options_; }

 protected:
  StateDict group_options() const override;
  void set_group_options(const StateDict& group) override;
  std::vector<std::string> state_tensor_names() const override;
  bool has_step() const override { return false; }

 private:
  SGDOptions options_;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool maximize = false;
};

// torch.optim.AdamW: step += 1; p *= 1 - lr·wd; m = lerp(m, g, 1-β1);
// v = β2·v + (1-β2)·g²; p -= lr/(1-β1^step) · m / (sqrt(v)/sqrt(1-β2^step) + eps).
// State: "step" (a 0-d float32 tensor, as PyTorch keeps it), "exp_avg", "exp_avg_sq".
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<NamedParameter> params, AdamWOptions options);
  AdamW(Module& module, AdamWOptions options) : AdamW(module.named_parameters(), options) {}
  void step() override;
  const AdamWOptions& options() const { return options_; }

 protected:
  StateDict group_options() const override;
  void set_group_options(const StateDict& group) override;
  std::vector<std::string> state_tensor_names() const override;
  bool has_step() const override { return true; }

 private:
  AdamWOptions options_;
};

// PyTorch's torch.distributed.checkpoint.state_dict helpers: the model's state
// dict and the optimizer's (state created first, so that it can be loaded in
// place), and the reverse. Both dicts alias the live tensors.
std::pair<StateDict, StateDict> get_state_dict(Module& model, Optimizer& optimizer);
void set_state_dict(Module& model, Optimizer& optimizer, const StateDict& model_state_dict,
                    const StateDict& optim_state_dict, bool strict = true);

}  // namespace dcpp
