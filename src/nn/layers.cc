#include <cmath>

#include "dcpp/error.h"
#include "dcpp/nn.h"
#include "nn/kernels.h"

namespace dcpp {

using nn_kernels::dispatch_float;
using nn_kernels::require_data;

namespace {

int64_t leading_rows(const Tensor& t) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) rows *= t.size(d);
  return rows;
}

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}

}  // namespace

// ---- Linear ----

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, ModuleOptions options)
    : Linear(in_features, out_features, bias, options, default_generator()) {}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, ModuleOptions options, Generator& gen)
    : in_features_(in_features), out_features_(out_features) {
  init(bias, options, gen);
}

void Linear::init(bool bias, ModuleOptions options, Generator& gen) {
  if (in_features_ < 0 || out_features_ < 0)
    throw Error(ErrorCode::kInvalidArgument, "Linear(" + std::to_string(in_features_) + ", " +
                                                 std::to_string(out_features_) + "): negative size");
  if (options.dtype != DType::kFloat32 && options.dtype != DType::kFloat64)
    throw Error(ErrorCode::kUnsupported, "Linear: dtype " + std::string(dtype_name(options.dtype)) +
                                             " (float32 or float64 only)");
  // kaiming_uniform_(a=sqrt(5)) gives bound gain*sqrt(3/fan_in) with
  // gain = sqrt(2/(1+5)), i.e. 1/sqrt(fan_in); the bias uses the same bound.
  const double bound = in_features_ > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features_)) : 0.0;
  auto make = [&](const Shape& shape) {
    if (options.device == Device::kMeta) return Tensor::empty(shape, options.dtype, Device::kMeta);
    return Tensor::uniform(shape, -bound, bound, gen, options.dtype);
  };
  weight_ = register_parameter("weight", make({out_features_, in_features_}));
  if (bias) bias_ = register_parameter("bias", make({out_features_}));
}

Tensor Linear::forward(const Tensor& x_in) {
  const Tensor& w = weight_->local();
  require_data(w, "Linear.forward");
  Tensor x = hooks_ ? hooks_->input(x_in) : x_in;
  const int64_t out_l = w.size(0), in_l = w.size(1);
  if (x.dim() < 1 || x.size(-1) != in_l)
    throw Error(ErrorCode::kInvalidArgument, "Linear.forward: input " + shape_to_string(x.shape()) +
                                                 " does not end in the local in_features " + std::to_string(in_l));
  if (x.dtype() != w.dtype())
    throw Error(ErrorCode::kInvalidArgument, "Linear.forward: input dtype " + std::string(dtype_name(x.dtype())) +
                                                 " but weight dtype " + std::string(dtype_name(w.dtype())));
  x = x.contiguous();
  const int64_t rows = leading_rows(x);
  Tensor y = Tensor::empty(with_last(x.shape(), out_l), w.dtype());
  if (y.numel() > 0) {
    Tensor wc = w.contiguous();
    dispatch_float(w.dtype(), "Linear.forward", [&](auto zero) {
      using T = decltype(zero);
      if (in_l == 0) {
        y.fill_(0);
        return;
      }
      nn_kernels::matmul_nt<T>(x.data<T>(), wc.data<T>(), y.data<T>(), rows, in_l, out_l);
    });
  }
  input_ = x;
  if (hooks_) y = hooks_->reduce_output(y).contiguous();
  if (bias_) {
    Tensor b = bias_->local().contiguous();
    if (y.size(-1) != b.size(0))
      throw Error(ErrorCode::kInvalidArgument, "Linear.forward: output " + shape_to_string(y.shape()) +
                                                   " does not match the local bias " + shape_to_string(b.shape()));
    if (y.numel() > 0) {
      dispatch_float(w.dtype(), "Linear.forward", [&](auto zero) {
        using T = decltype(zero);
        T* py = y.data<T>();
        const T* pb = b.data<T>();
        const int64_t n = b.size(0), r_all = y.numel() / n;
        for (int64_t r = 0; r < r_all; ++r)
          for (int64_t o = 0; o < n; ++o) py[r * n + o] += pb[o];
      });
    }
  }
  if (hooks_) y = hooks_->output(y);
  return y;
}

Tensor Linear::backward(const Tensor& grad_out) {
  if (!input_.defined()) throw Error(ErrorCode::kInvalidArgument, "Linear.backward called before forward");
  const Tensor& w = weight_->local();
  Tensor g = (hooks_ ? hooks_->grad_output(grad_out) : grad_out).contiguous();
  const int64_t out_l = w.size(0), in_l = w.size(1);
  const int64_t rows = leading_rows(input_);
  if (g.dim() != input_.dim() || leading_rows(g) != rows || g.size(-1) != (bias_ ? bias_->local().size(0) : out_l))
    throw Error(ErrorCode::kInvalidArgument, "Linear.backward: gradient " + shape_to_string(g.shape()) +
                                                 " does not match the output of input " + shape_to_string(input_.shape()));
  if (g.dtype() != w.dtype())
    throw Error(ErrorCode::kInvalidArgument, "Linear.backward: gradient dtype " + std::string(dtype_name(g.dtype())) +
                                                 " but weight dtype " + std::string(dtype_name(w.dtype())));
  Tensor gw = Tensor::zeros({out_l, in_l}, w.dtype());
  Tensor gx = Tensor::zeros(input_.shape(), w.dtype());
  Tensor gb = bias_ ? Tensor::zeros(bias_->local().shape(), w.dtype()) : Tensor();
  Tensor wc = w.contiguous();
  dispatch_float(w.dtype(), "Linear.backward", [&](auto zero) {
    using T = decltype(zero);
    if (g.numel() > 0 && rows > 0) {
      if (gw.numel() > 0) nn_kernels::matmul_tn<T>(g.data<T>(), input_.data<T>(), gw.data<T>(), rows, in_l, out_l);
      if (gx.numel() > 0 && out_l > 0)
        nn_kernels::matmul_nn<T>(g.data<T>(), wc.data<T>(), gx.data<T>(), rows, in_l, out_l);
      if (gb.defined() && gb.numel() > 0) nn_kernels::sum_rows<T>(g.data<T>(), gb.data<T>(), rows, gb.size(0));
    }
  });
  weight_->accumulate_grad(gw);
  if (bias_) bias_->accumulate_grad(gb);
  return hooks_ ? hooks_->grad_input(gx) : gx;
}

// ---- ReLU ----

Tensor ReLU::forward(const Tensor& x) {
  require_data(x, "ReLU.forward");
  input_ = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  if (y.numel() == 0) return y;
  dispatch_float(x.dtype(), "ReLU.forward", [&](auto zero) {
    using T = decltype(zero);
    const T* px = input_.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0, n = y.numel(); i < n; ++i) py[i] = px[i] > T(0) ? px[i] : T(0);
  });
  return y;
}

Tensor ReLU::backward(const Tensor& grad_out) {
  if (!input_.defined()) throw Error(ErrorCode::kInvalidArgument, "ReLU.backward called before forward");
  if (grad_out.shape() != input_.shape())
    throw Error(ErrorCode::kInvalidArgument, "ReLU.backward: gradient " + shape_to_string(grad_out.shape()) +
                                                 " for input " + shape_to_string(input_.shape()));
  Tensor g = grad_out.to(input_.dtype()).contiguous();
  Tensor gx = Tensor::empty(input_.shape(), input_.dtype());
  if (gx.numel() == 0) return gx;
  dispatch_float(input_.dtype(), "ReLU.backward", [&](auto zero) {
    using T = decltype(zero);
    const T* px = input_.data<T>();
    const T* pg = g.data<T>();
    T* pgx = gx.data<T>();
    // The derivative at 0 is taken as 0, as PyTorch does.
    for (int64_t i = 0, n = gx.numel(); i < n; ++i) pgx[i] = px[i] > T(0) ? pg[i] : T(0);
  });
  return gx;
}

// ---- Sequential ----

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(named_children().size()), std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, m] : named_children()) y = m->forward(y);
  return y;
}

Tensor Sequential::backward(const Tensor& grad_out) {
  Tensor g = grad_out;
  const auto& children = named_children();
  for (auto it = children.rbegin(); it != children.rend(); ++it) g = it->second->backward(g);
  return g;
}

}  // namespace dcpp
