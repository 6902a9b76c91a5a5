#include "dcpp/testing/models.h"

namespace dcpp {

MLPModule::MLPModule(ModuleOptions options, bool bias) {
  manual_seed(5);
  net1_ = register_module("net1", std::make_shared<Linear>(10, 16, bias, options));
  relu_ = register_module("relu", std::make_shared<ReLU>());
  net2_ = register_module("net2", std::make_shared<Linear>(16, 10, bias, options));
}

Tensor MLPModule::forward(const Tensor& x) { return net2_->forward(relu_->forward(net1_->forward(x))); }

Tensor MLPModule::backward(const Tensor& grad_out) {
  return net1_->backward(relu_->backward(net2_->backward(grad_out)));
}

UnevenShardedModel::UnevenShardedModel(ModuleOptions options) {
  manual_seed(5);
  net1_ = register_module("net1", std::make_shared<Linear>(5, 10, true, options));
  relu_ = register_module("relu", std::make_shared<ReLU>());
  net2_ = register_module("net2", std::make_shared<Linear>(10, 15, true, options));
  net3_ = register_module("net3", std::make_shared<Linear>(15, 1, true, options));
}

Tensor UnevenShardedModel::forward(const Tensor& x) {
  return net3_->forward(net2_->forward(relu_->forward(net1_->forward(x))));
}

Tensor UnevenShardedModel::backward(const Tensor& grad_out) {
  return net1_->backward(relu_->backward(net2_->backward(net3_->backward(grad_out))));
}

}  // namespace dcpp
