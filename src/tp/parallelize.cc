#include <memory>

#include "dcpp/error.h"
#include "dcpp/tp.h"

namespace dcpp {

namespace {

Placement normalized(const Placement& p, int64_t ndim) {
  if (const auto* s = std::get_if<Shard>(&p)) return Shard{s->dim < 0 ? s->dim + ndim : s->dim};
  return p;
}

// Moves a local activation from one layout to another over the 1-d mesh.
// `features` is the global size of the last dim (the layer's in or out
// features), which a shard of the last dim cannot tell by itself.
Tensor relayout(const Tensor& t, const DeviceMesh& mesh, const Placement& from_p, const Placement& to_p,
                int64_t features) {
  const Placement from = normalized(from_p, t.dim()), to = normalized(to_p, t.dim());
  if (from == to) return t;
  std::optional<Shape> global = t.shape();
  if (const auto* s = std::get_if<Shard>(&from)) {
    if (s->dim == t.dim() - 1)
      global->back() = features;
    else
      global.reset();  // another dim: infer its global size (collective)
  }
  DTensor d = DTensor::from_local(t, mesh, {from}, global);
  return d.redistribute({to}).to_local();
}

class TpHooks : public LinearHooks {
 public:
  TpHooks(DeviceMesh mesh, int64_t in_features, int64_t out_features, Placement input_layout,
          Placement output_layout)
      : mesh_(std::move(mesh)),
        in_(in_features),
        out_(out_features),
        input_layout_(std::move(input_layout)),
        output_layout_(std::move(output_layout)) {}

 protected:
  DeviceMesh mesh_;
  int64_t in_, out_;
  Placement input_layout_, output_layout_;
};

class ColwiseHooks : public TpHooks {
 public:
  using TpHooks::TpHooks;
  Tensor input(const Tensor& x) override { return relayout(x, mesh_, input_layout_, Replicate{}, in_); }
  Tensor reduce_output(const Tensor& y) override { return y; }
  Tensor output(const Tensor& y) override { return relayout(y, mesh_, Shard{-1}, output_layout_, out_); }
  Tensor grad_output(const Tensor& g) override { return relayout(g, mesh_, output_layout_, Shard{-1}, out_); }
  // Each rank's W_localᵀ·g covers only its output columns: a partial sum.
  Tensor grad_input(const Tensor& gx) override { return relayout(gx, mesh_, Partial{}, input_layout_, in_); }
};

class RowwiseHooks : public TpHooks {
 public:
  using TpHooks::TpHooks;
  Tensor input(const Tensor& x) override { return relayout(x, mesh_, input_layout_, Shard{-1}, in_); }
  // The local matmul over this rank's input columns is a partial sum; the
  // bias is added after the reduction, so it counts exactly once.
  Tensor reduce_output(const Tensor& y) override { return relayout(y, mesh_, Partial{}, Replicate{}, out_); }
  Tensor output(const Tensor& y) override { return relayout(y, mesh_, Replicate{}, output_layout_, out_); }
  Tensor grad_output(const Tensor& g) override { return relayout(g, mesh_, output_layout_, Replicate{}, out_); }
  Tensor grad_input(const Tensor& gx) override { return relayout(gx, mesh_, Shard{-1}, input_layout_, in_); }
};

void check_activation_layout(const Placement& p, const std::string& name, const char* which) {
  if (std::holds_alternative<Partial>(p))
    throw Error(ErrorCode::kUnsupported, "parallelize_module: \"" + name + "\": " + which +
                                             " layout Partial is not supported (use Replicate or Shard)");
}

void distribute_parameter(const ParameterPtr& p, const DeviceMesh& mesh, Placement placement) {
  p->assign(distribute_tensor(p->local(), mesh, {std::move(placement)}, 0));
}

}  // namespace

Module& parallelize_module(Module& module, const DeviceMesh& mesh, const ParallelizePlan& plan) {
  if (!mesh.defined()) throw Error(ErrorCode::kInvalidArgument, "parallelize_module: undefined DeviceMesh");
  if (mesh.ndim() != 1)
    throw Error(ErrorCode::kInvalidArgument, "parallelize_module: tensor parallelism needs a 1-d mesh, got " +
                                                 shape_to_string(mesh.shape()));
  for (const auto& [name, style] : plan) {
    Module& target = module.get_submodule(name);
    const char* style_name = std::holds_alternative<ColwiseParallel>(style) ? "ColwiseParallel" : "RowwiseParallel";
    auto* linear = dynamic_cast<Linear*>(&target);
    if (!linear)
      throw Error(ErrorCode::kUnsupported, std::string("parallelize_module: ") + style_name + " applies to Linear, \"" +
                                               name + "\" is a " + target.type_name());
    if (linear->weight()->is_distributed() || linear->hooks())
      throw Error(ErrorCode::kInvalidArgument, "parallelize_module: \"" + name + "\" is already parallelized");
    if (const auto* c = std::get_if<ColwiseParallel>(&style)) {
      check_activation_layout(c->input_layout, name, "input");
      check_activation_layout(c->output_layout, name, "output");
      distribute_parameter(linear->weight(), mesh, Shard{0});
      if (linear->bias()) distribute_parameter(linear->bias(), mesh, Shard{0});
      linear->set_hooks(std::make_shared<ColwiseHooks>(mesh, linear->in_features(), linear->out_features(),
                                                       c->input_layout, c->output_layout));
    } else {
      const auto& r = std::get<RowwiseParallel>(style);
      check_activation_layout(r.input_layout, name, "input");
      check_activation_layout(r.output_layout, name, "output");
      distribute_parameter(linear->weight(), mesh, Shard{1});
      if (linear->bias()) distribute_parameter(linear->bias(), mesh, Replicate{});
      linear->set_hooks(std::make_shared<RowwiseHooks>(mesh, linear->in_features(), linear->out_features(),
                                                       r.input_layout, r.output_layout));
    }
  }
  return module;
}

}  // namespace dcpp
