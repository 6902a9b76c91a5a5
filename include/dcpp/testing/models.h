// The seed test's models as reusable modules (PyTorch's MLPModule from
// common_dtensor and the seed's UnevenShardedModel). Each constructor calls
// manual_seed(5) first, so every rank builds identical parameters, and takes
// ModuleOptions for the device (meta for shape-only models) and the dtype
// (float64 for finite-difference references). Thread-safety: as Module.
#pragma once

#include <memory>

#include "dcpp/nn.h"

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

}  // namespace dcpp
