#include "dcpp/testing/models.h"

#include <cmath>

#include "nn/kernels.h"

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

// ---- GPTModel ----

namespace dcpp {

namespace {

// splitmix64's finaliser: a bijective 64-bit mix with full avalanche.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Fills `local`, the box at `offset` of a tensor of `global_shape`, with
// U(-bound, bound) values that depend only on (key, global linear index).
template <typename T>
void fill_hashed(Tensor& local, const Shape& global_shape, const Shape& offset, uint64_t key, double bound) {
  const int64_t n = local.numel();
  if (n == 0) return;
  const int64_t dims = local.dim();
  T* out = local.data<T>();
  if (dims == 0) {
    out[0] = static_cast<T>((static_cast<double>(mix64(key) >> 11) * 0x1p-53 * 2 - 1) * bound);
    return;
  }
  Shape gstride(static_cast<size_t>(dims), 1);
  for (int64_t d = dims - 2; d >= 0; --d) gstride[d] = gstride[d + 1] * global_shape[d + 1];
  const int64_t cols = local.size(dims - 1);
  Shape idx(static_cast<size_t>(dims), 0);  // odometer over every dim but the last
  for (int64_t done = 0; done < n; done += cols) {
    int64_t base = offset[dims - 1];
    for (int64_t d = 0; d + 1 < dims; ++d) base += (offset[d] + idx[d]) * gstride[d];
    for (int64_t c = 0; c < cols; ++c) {
      const uint64_t h = mix64(key + static_cast<uint64_t>(base + c) * 0x9E3779B97F4A7C15ull);
      out[done + c] = static_cast<T>((static_cast<double>(h >> 11) * 0x1p-53 * 2 - 1) * bound);
    }
    for (int64_t d = dims - 2; d >= 0; --d) {
      if (++idx[d] < local.size(d)) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

GPTBlock::GPTBlock(int64_t hidden, int64_t ffn_hidden, ModuleOptions options) {
  // Shapes only: GPTModel::init_weights gives the values.
  const ModuleOptions meta{Device::kMeta, options.dtype};
  up_proj_ = register_module("up_proj", std::make_shared<Linear>(hidden, ffn_hidden, true, meta));
  act_ = register_module("act", std::make_shared<ReLU>());
  down_proj_ = register_module("down_proj", std::make_shared<Linear>(ffn_hidden, hidden, true, meta));
}

Tensor GPTBlock::forward(const Tensor& x) {
  Tensor y = down_proj_->forward(act_->forward(up_proj_->forward(x))).contiguous();
  nn_kernels::add_(y, x);
  return y;
}

Tensor GPTBlock::backward(const Tensor& grad_out) {
  Tensor g = up_proj_->backward(act_->backward(down_proj_->backward(grad_out))).contiguous();
  nn_kernels::add_(g, grad_out);
  return g;
}

GPTModel::GPTModel(GPTConfig config, ModuleOptions options, uint64_t seed) : config_(config) {
  if (config_.ffn_hidden == 0) config_.ffn_hidden = 4 * config_.hidden;
  if (config_.layers < 0 || config_.hidden <= 0 || config_.ffn_hidden <= 0)
    throw Error(ErrorCode::kInvalidArgument, "GPTModel: layers " + std::to_string(config_.layers) + ", hidden " +
                                                 std::to_string(config_.hidden) + ", ffn_hidden " +
                                                 std::to_string(config_.ffn_hidden));
  layers_ = register_module("layers", std::make_shared<Sequential>());
  for (int l = 0; l < config_.layers; ++l)
    layers_->push_back(std::make_shared<GPTBlock>(config_.hidden, config_.ffn_hidden, options));
  if (options.device != Device::kMeta) init_weights(seed);
}

Tensor GPTModel::forward(const Tensor& x) { return layers_->forward(x); }

Tensor GPTModel::backward(const Tensor& grad_out) { return layers_->backward(grad_out); }

int64_t GPTModel::num_parameters() {
  int64_t n = 0;
  for (const auto& p : parameters()) n += shape_numel(p->shape());
  return n;
}

void GPTModel::init_weights(uint64_t seed) {
  for (const auto& [module_name, m] : named_modules()) {
    auto* linear = dynamic_cast<Linear*>(m);
    if (!linear) continue;
    const double bound = 1.0 / std::sqrt(static_cast<double>(linear->in_features()));
    for (const auto& [param_name, p] : linear->named_parameters()) {
      Shape offset(p->shape().size(), 0);
      if (p->is_distributed()) {
        const DTensor& d = p->dtensor();
        if (p->is_meta()) p->assign(DTensor(Tensor::empty(d.to_local().shape(), d.dtype()), d.device_mesh(),
                                            d.placements(), d.shape()));
        offset = p->dtensor().global_offset();
      } else if (p->is_meta()) {
        p->assign(Tensor::empty(p->shape(), p->dtype()));
      }
      const uint64_t key = mix64(seed ^ fnv1a(module_name + "." + param_name));
      Tensor& local = p->local();
      if (!local.is_contiguous()) local = local.contiguous();
      const Shape global_shape = p->shape();  // a lambda may not capture a structured binding (clang 14)
      nn_kernels::dispatch_float(local.dtype(), "GPTModel.init_weights", [&](auto zero) {
        fill_hashed<decltype(zero)>(local, global_shape, offset, key, bound);
      });
    }
  }
}

}  // namespace dcpp
