#include <unordered_set>

#include "dcpp/error.h"
#include "dcpp/nn.h"
#include "nn/kernels.h"

namespace dcpp {

// ---- default generator ----

Generator& default_generator() {
  // One per thread: on the thread backend each rank is a thread and must not
  // share (or race on) another rank's stream, just as processes do not.
  thread_local Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

// ---- Parameter ----

Parameter::Parameter(Tensor value, bool is_buffer) : value_(std::move(value)), is_buffer_(is_buffer) {
  if (!value_.defined()) throw Error(ErrorCode::kInvalidArgument, "a parameter needs a defined tensor");
}

Parameter::Parameter(DTensor value, bool is_buffer) : dvalue_(std::move(value)), is_buffer_(is_buffer) {
  if (!dvalue_.defined()) throw Error(ErrorCode::kInvalidArgument, "a parameter needs a defined DTensor");
}

Shape Parameter::shape() const { return is_distributed() ? dvalue_.shape() : value_.shape(); }

const DTensor& Parameter::dtensor() const {
  if (!is_distributed()) throw Error(ErrorCode::kInvalidArgument, "parameter is not distributed (no DTensor)");
  return dvalue_;
}

StateValue Parameter::value() const {
  if (is_distributed()) return StateValue(dvalue_);
  return StateValue(value_);
}

void Parameter::assign(Tensor value) {
  if (!value.defined()) throw Error(ErrorCode::kInvalidArgument, "cannot assign an undefined tensor to a parameter");
  value_ = std::move(value);
  dvalue_ = DTensor();
  grad_ = Tensor();
}

void Parameter::assign(DTensor value) {
  if (!value.defined()) throw Error(ErrorCode::kInvalidArgument, "cannot assign an undefined DTensor to a parameter");
  dvalue_ = std::move(value);
  value_ = Tensor();
  grad_ = Tensor();
}

DTensor Parameter::grad_dtensor() const {
  if (!is_distributed()) throw Error(ErrorCode::kInvalidArgument, "parameter is not distributed (no DTensor grad)");
  if (!grad_.defined()) return DTensor();
  return DTensor(grad_, dvalue_.device_mesh(), dvalue_.placements(), dvalue_.shape());
}

StateValue Parameter::grad() const {
  if (!grad_.defined()) return StateValue();
  if (is_distributed()) return StateValue(grad_dtensor());
  return StateValue(grad_);
}

void Parameter::accumulate_grad(const Tensor& g) {
  if (g.shape() != local().shape())
    throw Error(ErrorCode::kInvalidArgument, "gradient of shape " + shape_to_string(g.shape()) +
                                                 " for a parameter of local shape " + shape_to_string(local().shape()));
  if (!grad_.defined()) {
    grad_ = g.to(dtype()).clone();
    return;
  }
  nn_kernels::add_(grad_, g);
}

void Parameter::zero_grad(bool set_to_none) {
  if (set_to_none)
    grad_ = Tensor();
  else if (grad_.defined())
    grad_.fill_(0);
}

// ---- Module ----

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "module attribute name '" + name + "' must be non-empty without '.'");
  auto taken = [&](const auto& list) {
    for (const auto& e : list)
      if (e.first == name) return true;
    return false;
  };
  if (taken(params_) || taken(buffers_) || taken(children_))
    throw Error(ErrorCode::kInvalidArgument, type_name() + " already has an attribute named '" + name + "'");
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  if (!module) throw Error(ErrorCode::kInvalidArgument, "register_module('" + name + "'): null module");
  check_new_name(name);
  children_.emplace_back(name, std::move(module));
}

ParameterPtr Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name);
  auto p = std::make_shared<Parameter>(std::move(value), false);
  params_.emplace_back(name, p);
  return p;
}

ParameterPtr Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  auto p = std::make_shared<Parameter>(std::move(value), true);
  buffers_.emplace_back(name, p);
  return p;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

Module& Module::get_submodule(const std::string& dotted_name) {
  Module* m = this;
  size_t start = 0;
  while (start < dotted_name.size() || (start == 0 && !dotted_name.empty())) {
    size_t dot = dotted_name.find('.', start);
    std::string part = dotted_name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Module* next = nullptr;
    for (const auto& [name, child] : m->children_)
      if (name == part) next = child.get();
    if (!next)
      throw Error(ErrorCode::kNotFound, "no submodule '" + dotted_name + "' (" + m->type_name() + " has no child '" +
                                            part + "')");
    m = next;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *m;
}

void Module::collect(const std::string& prefix, bool buffers, std::vector<NamedParameter>& out) const {
  for (const auto& [name, p] : buffers ? buffers_ : params_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

void Module::collect_state(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(prefix + name, p);
  for (const auto& [name, p] : buffers_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

std::vector<NamedParameter> Module::named_parameters() {
  std::vector<NamedParameter> out;
  collect("", false, out);
  return out;
}

std::vector<ParameterPtr> Module::parameters() {
  std::vector<ParameterPtr> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<NamedParameter> Module::named_buffers() {
  std::vector<NamedParameter> out;
  collect("", true, out);
  return out;
}

StateDict Module::state_dict() {
  std::vector<NamedParameter> entries;
  collect_state("", entries);
  StateDict sd;
  for (const auto& [name, p] : entries) sd.set(name, p->value());
  return sd;
}

namespace {

std::string quoted_list(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "" : ", ") + ("\"" + k + "\"");
  return s;
}

const Shape& value_shape(const StateValue& v) {
  return v.is_dtensor() ? std::get<DTensor>(v.variant()).shape() : std::get<Tensor>(v.variant()).shape();
}

}  // namespace

void nn_kernels::copy_value_into(Tensor& dst_local, const DTensor* dst_layout, const StateValue& v) {
  if (dst_layout) {
    if (v.is_dtensor()) {
      if (std::get<DTensor>(v.variant()).device_mesh() != dst_layout->device_mesh())
        throw Error(ErrorCode::kInvalidArgument, "cannot load a DTensor from another device mesh");
      DTensor src = std::get<DTensor>(v.variant()).redistribute(dst_layout->placements());
      dst_local.copy_from(src.to_local());
    } else {
      Tensor piece = std::get<Tensor>(v.variant());
      Shape off = dst_layout->global_offset();
      for (size_t d = 0; d < off.size(); ++d)
        piece = piece.narrow(static_cast<int64_t>(d), off[d], dst_local.size(static_cast<int64_t>(d)));
      dst_local.copy_from(piece);
    }
  } else if (v.is_dtensor()) {
    dst_local.copy_from(std::get<DTensor>(v.variant()).full_tensor());
  } else {
    dst_local.copy_from(std::get<Tensor>(v.variant()));
  }
}

void Module::load_state_dict(const StateDict& sd, bool strict, bool assign) {
  std::vector<NamedParameter> entries;
  collect_state("", entries);
  // Validate everything first so that a failing load changes nothing.
  std::vector<std::string> missing, unexpected;
  std::vector<std::pair<ParameterPtr, const StateValue*>> todo;
  for (const auto& [name, p] : entries) {
    const StateValue* v = sd.find(name);
    if (!v) {
      missing.push_back(name);
      continue;
    }
    if (!v->is_tensor() && !v->is_dtensor())
      throw Error(ErrorCode::kInvalidArgument, "load_state_dict: key \"" + name + "\" holds a " + v->type_name() +
                                                   ", expected a Tensor or DTensor");
    const Shape& shape = value_shape(*v);
    if (shape != p->shape())
      throw Error(ErrorCode::kInvalidArgument, "load_state_dict: size mismatch for \"" + name + "\": copying a param with shape " +
                                                   shape_to_string(shape) + ", the shape in the current model is " +
                                                   shape_to_string(p->shape()));
    if (assign && v->is_dtensor() != p->is_distributed())
      throw Error(ErrorCode::kInvalidArgument, "load_state_dict(assign=true): key \"" + name + "\" holds a " +
                                                   v->type_name() + " but the parameter is a " +
                                                   (p->is_distributed() ? "DTensor" : "Tensor"));
    if (v->is_dtensor() && p->is_distributed() &&
        std::get<DTensor>(v->variant()).device_mesh() != p->dtensor().device_mesh())
      throw Error(ErrorCode::kInvalidArgument, "load_state_dict: key \"" + name + "\" is a DTensor on another mesh");
    const bool v_meta = v->is_dtensor() ? std::get<DTensor>(v->variant()).is_meta() : std::get<Tensor>(v->variant()).is_meta();
    if (!assign && v_meta && !p->is_meta())
      throw Error(ErrorCode::kInvalidArgument, "load_state_dict: key \"" + name +
                                                   "\" is on the meta device and has no data to copy");
    todo.emplace_back(p, v);
  }
  {
    std::unordered_set<std::string> wanted;
    for (const auto& e : entries) wanted.insert(e.first);
    for (const auto& [key, v] : sd)
      if (!wanted.count(key)) unexpected.push_back(key);
  }
  if (strict && (!missing.empty() || !unexpected.empty())) {
    std::string msg = "Error(s) in loading state_dict for " + type_name() + ":";
    if (!missing.empty()) msg += " Missing key(s) in state_dict: " + quoted_list(missing) + ".";
    if (!unexpected.empty()) msg += " Unexpected key(s) in state_dict: " + quoted_list(unexpected) + ".";
    throw Error(ErrorCode::kInvalidArgument, msg);
  }
  for (auto& [p, v] : todo) {
    if (assign) {
      if (v->is_dtensor())
        p->assign(std::get<DTensor>(v->variant()));
      else
        p->assign(std::get<Tensor>(v->variant()));
      continue;
    }
    if (p->is_meta()) continue;  // PyTorch: copying into a meta parameter is a no-op
    nn_kernels::copy_value_into(p->local(), p->is_distributed() ? &p->dtensor() : nullptr, *v);
  }
}

void Module::zero_grad(bool set_to_none) {
  for (auto& p : parameters()) p->zero_grad(set_to_none);
}

}  // namespace dcpp
