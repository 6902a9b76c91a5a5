#include "dcpp/optim.h"

#include <cmath>
#include <unordered_set>

#include "dcpp/error.h"
#include "nn/kernels.h"

namespace dcpp {

using nn_kernels::dispatch_float;

namespace {

StateValue zeros_like(const Parameter& p) {
  Tensor z = p.is_meta() ? Tensor::empty(p.local().shape(), p.dtype(), Device::kMeta)
                         : Tensor::zeros(p.local().shape(), p.dtype());
  if (p.is_distributed()) {
    const DTensor& d = p.dtensor();
    return StateValue(DTensor(z, d.device_mesh(), d.placements(), d.shape()));
  }
  return StateValue(z);
}

Tensor& local_of(StateValue& v) { return v.is_dtensor() ? v.dtensor().local() : v.tensor(); }

double number_of(const StateValue& v, const std::string& what) {
  if (v.holds<double>()) return v.as<double>();
  if (v.holds<int64_t>()) return static_cast<double>(v.as<int64_t>());
  if (v.holds<bool>()) return v.as<bool>() ? 1 : 0;
  if (v.is_tensor()) return v.as<Tensor>().item();
  if (v.is_dtensor()) return v.as<DTensor>().to_local().item();
  throw Error(ErrorCode::kInvalidArgument, "optimizer state: \"" + what + "\" holds a " + v.type_name() +
                                               ", expected a number");
}

double group_number(const StateDict& g, const std::string& key) { return number_of(g.at(key), "param_groups.0." + key); }

// Runs f on contiguous views of the given tensors and writes back any copies
// (parameters and state are normally contiguous already).
template <typename F>
void with_contiguous(std::vector<Tensor*> ts, F&& f) {
  std::vector<Tensor> work;
  for (Tensor* t : ts) work.push_back(t->contiguous());
  f(work);
  for (size_t i = 0; i < ts.size(); ++i)
    if (!work[i].shares_storage_with(*ts[i]) || work[i].storage_offset() != ts[i]->storage_offset())
      ts[i]->copy_from(work[i]);
}

}  // namespace

// ---- Optimizer ----

Optimizer::Optimizer(std::vector<NamedParameter> params) : params_(std::move(params)) {
  std::unordered_set<std::string> seen;
  for (const auto& [name, p] : params_) {
    if (!p) throw Error(ErrorCode::kInvalidArgument, "optimizer: parameter \"" + name + "\" is null");
    if (!seen.insert(name).second)
      throw Error(ErrorCode::kInvalidArgument, "optimizer: parameter name \"" + name + "\" appears twice");
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& [name, p] : params_) p->zero_grad(set_to_none);
}

StateDict* Optimizer::find_state(const std::string& name) {
  StateValue* v = state_.find(name);
  return v ? &v->dict() : nullptr;
}

StateDict Optimizer::param_state(const std::string& name) const {
  const StateValue* v = state_.find(name);
  return v ? v->dict() : StateDict();
}

StateDict& Optimizer::ensure_state(const std::string& name, const Parameter& p) {
  if (StateDict* s = find_state(name)) return *s;
  StateDict s;
  if (has_step()) s.set("step", Tensor::full({}, 0.0, DType::kFloat32));
  for (const auto& k : state_tensor_names()) s.set(k, zeros_like(p));
  state_.set(name, s);
  return state_.at(name).dict();
}

void Optimizer::init_state() {
  for (const auto& [name, p] : params_) ensure_state(name, *p);
}

StateDict Optimizer::state_dict() {
  StateDict state;
  for (const auto& [name, p] : params_) {
    StateDict* s = find_state(name);
    if (!s) continue;
    StateDict per;
    for (const auto& [k, v] : *s) per.set(k, v);  // tensors alias the live state
    state.set(name, per);
  }
  StateDict group = group_options();
  StateList names;
  for (const auto& [name, p] : params_) names.push_back(StateValue(name));
  group.set("params", names);
  return StateDict{{"state", state}, {"param_groups", StateList{group}}};
}

void Optimizer::load_state_dict(const StateDict& sd) {
  const StateDict& state = sd.at("state").dict();
  const auto& groups = sd.at("param_groups").as<StateList>();
  if (groups.size() != 1)
    throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: " + std::to_string(groups.size()) +
                                                 " param groups, this optimizer has 1");
  const StateDict& group = groups[0].dict();
  std::unordered_set<std::string> ours;
  for (const auto& [name, p] : params_) ours.insert(name);
  {
    std::unordered_set<std::string> listed;
    for (const auto& n : group.at("params").as<StateList>()) listed.insert(n.as<std::string>());
    std::string missing, unknown;
    for (const auto& n : ours)
      if (!listed.count(n)) missing += (missing.empty() ? "" : ", ") + ("\"" + n + "\"");
    for (const auto& n : listed)
      if (!ours.count(n)) unknown += (unknown.empty() ? "" : ", ") + ("\"" + n + "\"");
    if (!missing.empty() || !unknown.empty())
      throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: param_groups.0.params differs; missing: [" +
                                                   missing + "], unknown: [" + unknown + "]");
  }
  // Validate before changing anything.
  for (const auto& [name, v] : state) {
    const ParameterPtr* param = nullptr;
    for (const auto& e : params_)
      if (e.first == name) param = &e.second;
    if (!param)
      throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: state for unknown parameter \"" + name + "\"");
    const StateDict& per = v.dict();
    for (const auto& k : state_tensor_names()) {
      const StateValue* t = per.find(k);
      if (!t || t->is_null()) continue;
      if (!t->is_tensor() && !t->is_dtensor())
        throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: state." + name + "." + k + " holds a " +
                                                     t->type_name() + ", expected a Tensor or DTensor");
      const Shape& shape = t->is_dtensor() ? t->as<DTensor>().shape() : t->as<Tensor>().shape();
      if (shape != (*param)->shape())
        throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: state." + name + "." + k + " has shape " +
                                                     shape_to_string(shape) + ", the parameter has " +
                                                     shape_to_string((*param)->shape()));
    }
    if (has_step() && !per.contains("step"))
      throw Error(ErrorCode::kInvalidArgument, "optimizer load_state_dict: state." + name + " has no \"step\"");
    if (has_step()) number_of(per.at("step"), "state." + name + ".step");
  }
  set_group_options(group);
  for (const auto& [name, p] : params_) {
    const StateValue* loaded = state.find(name);
    if (!loaded) {
      state_.erase(name);
      continue;
    }
    const StateDict& per = loaded->dict();
    StateDict* mine = find_state(name);
    if (!mine) {
      state_.set(name, StateDict());
      mine = find_state(name);
    }
    if (has_step()) {
      double step = number_of(per.at("step"), "state." + name + ".step");
      StateValue* s = mine->find("step");
      if (s && s->is_tensor())
        s->tensor().fill_(step);
      else
        mine->set("step", Tensor::full({}, step, DType::kFloat32));
    }
    for (const auto& k : state_tensor_names()) {
      const StateValue* t = per.find(k);
      if (!t || t->is_null()) {
        mine->erase(k);
        continue;
      }
      if (!mine->contains(k)) mine->set(k, zeros_like(*p));
      if (p->is_meta()) continue;
      nn_kernels::copy_value_into(local_of(mine->at(k)), p->is_distributed() ? &p->dtensor() : nullptr, *t);
    }
  }
}

// ---- SGD ----

SGD::SGD(std::vector<NamedParameter> params, SGDOptions options) : Optimizer(std::move(params)), options_(options) {
  if (options_.lr < 0) throw Error(ErrorCode::kInvalidArgument, "SGD: invalid learning rate " + std::to_string(options_.lr));
  if (options_.nesterov && (options_.momentum <= 0 || options_.dampening != 0))
    throw Error(ErrorCode::kInvalidArgument, "SGD: Nesterov momentum requires a momentum and zero dampening");
}

std::vector<std::string> SGD::state_tensor_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

StateDict SGD::group_options() const {
  return StateDict{{"lr", options_.lr},
                   {"momentum", options_.momentum},
                   {"dampening", options_.dampening},
                   {"weight_decay", options_.weight_decay},
                   {"nesterov", options_.nesterov},
                   {"maximize", options_.maximize}};
}

void SGD::set_group_options(const StateDict& g) {
  options_.lr = group_number(g, "lr");
  options_.momentum = group_number(g, "momentum");
  options_.dampening = group_number(g, "dampening");
  options_.weight_decay = group_number(g, "weight_decay");
  options_.nesterov = group_number(g, "nesterov") != 0;
  if (g.contains("maximize")) options_.maximize = group_number(g, "maximize") != 0;
}

void SGD::step() {
  const SGDOptions o = options_;
  for (auto& [name, p] : params_) {
    if (!p->has_grad()) continue;
    nn_kernels::require_data(p->local(), ("SGD.step on \"" + name + "\"").c_str());
    Tensor* buf = nullptr;
    bool first = false;
    if (o.momentum != 0) {
      first = find_state(name) == nullptr || !find_state(name)->contains("momentum_buffer");
      StateDict& s = ensure_state(name, *p);
      if (!s.contains("momentum_buffer")) s.set("momentum_buffer", zeros_like(*p));
      buf = &local_of(s.at("momentum_buffer"));
    }
    Tensor g = p->grad_local();
    std::vector<Tensor*> ts{&p->local(), &g};
    if (buf) ts.push_back(buf);
    // Not p->dtype() inside the lambda: clang 14 cannot capture a structured binding.
    const DType dtype = p->dtype();
    with_contiguous(ts, [&](std::vector<Tensor>& w) {
      dispatch_float(dtype, "SGD.step", [&](auto zero) {
        using T = decltype(zero);
        T* pp = w[0].data<T>();
        const T* pg = w[1].data<T>();
        T* pb = buf ? w[2].data<T>() : nullptr;
        for (int64_t i = 0, n = w[0].numel(); i < n; ++i) {
          T d = o.maximize ? -pg[i] : pg[i];
          if (o.weight_decay != 0) d = d + static_cast<T>(o.weight_decay) * pp[i];
          if (pb) {
            pb[i] = first ? d : pb[i] * static_cast<T>(o.momentum) + static_cast<T>(1 - o.dampening) * d;
            d = o.nesterov ? d + static_cast<T>(o.momentum) * pb[i] : pb[i];
          }
          pp[i] = pp[i] + static_cast<T>(-o.lr) * d;
        }
      });
    });
  }
}

// ---- AdamW ----

AdamW::AdamW(std::vector<NamedParameter> params, AdamWOptions options)
    : Optimizer(std::move(params)), options_(options) {
  if (options_.lr < 0) throw Error(ErrorCode::kInvalidArgument, "AdamW: invalid learning rate " + std::to_string(options_.lr));
  if (options_.eps < 0) throw Error(ErrorCode::kInvalidArgument, "AdamW: invalid epsilon " + std::to_string(options_.eps));
  if (options_.beta1 < 0 || options_.beta1 >= 1 || options_.beta2 < 0 || options_.beta2 >= 1)
    throw Error(ErrorCode::kInvalidArgument, "AdamW: betas must be in [0, 1)");
}

std::vector<std::string> AdamW::state_tensor_names() const { return {"exp_avg", "exp_avg_sq"}; }

StateDict AdamW::group_options() const {
  return StateDict{{"lr", options_.lr},
                   {"betas", StateList{options_.beta1, options_.beta2}},
                   {"eps", options_.eps},
                   {"weight_decay", options_.weight_decay},
                   {"amsgrad", false},
                   {"maximize", options_.maximize}};
}

void AdamW::set_group_options(const StateDict& g) {
  options_.lr = group_number(g, "lr");
  const auto& betas = g.at("betas").as<StateList>();
  if (betas.size() != 2) throw Error(ErrorCode::kInvalidArgument, "AdamW: param_groups.0.betas needs two values");
  options_.beta1 = number_of(betas[0], "param_groups.0.betas.0");
  options_.beta2 = number_of(betas[1], "param_groups.0.betas.1");
  options_.eps = group_number(g, "eps");
  options_.weight_decay = group_number(g, "weight_decay");
  if (g.contains("amsgrad") && group_number(g, "amsgrad") != 0)
    throw Error(ErrorCode::kUnsupported, "AdamW: amsgrad is not supported");
  if (g.contains("maximize")) options_.maximize = group_number(g, "maximize") != 0;
}

void AdamW::step() {
  const AdamWOptions o = options_;
  for (auto& [name, p] : params_) {
    if (!p->has_grad()) continue;
    nn_kernels::require_data(p->local(), ("AdamW.step on \"" + name + "\"").c_str());
    StateDict& s = ensure_state(name, *p);
    Tensor& step_t = s.at("step").tensor();
    const double step = step_t.item() + 1;
    step_t.fill_(step);
    Tensor g = p->grad_local();
    std::vector<Tensor*> ts{&p->local(), &g, &local_of(s.at("exp_avg")), &local_of(s.at("exp_avg_sq"))};
    const double bias_correction1 = 1 - std::pow(o.beta1, step);
    const double bias_correction2 = 1 - std::pow(o.beta2, step);
    const double step_size = o.lr / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);
    // Not p->dtype() inside the lambda: clang 14 cannot capture a structured binding.
    const DType dtype = p->dtype();
    with_contiguous(ts, [&](std::vector<Tensor>& w) {
      dispatch_float(dtype, "AdamW.step", [&](auto zero) {
        using T = decltype(zero);
        T* pp = w[0].data<T>();
        const T* pg = w[1].data<T>();
        T* pm = w[2].data<T>();
        T* pv = w[3].data<T>();
        const T decay = static_cast<T>(1 - o.lr * o.weight_decay);
        const T w1 = static_cast<T>(1 - o.beta1), b2 = static_cast<T>(o.beta2), w2 = static_cast<T>(1 - o.beta2);
        for (int64_t i = 0, n = w[0].numel(); i < n; ++i) {
          const T gi = o.maximize ? -pg[i] : pg[i];
          pp[i] = pp[i] * decay;
          pm[i] = pm[i] + w1 * (gi - pm[i]);
          pv[i] = pv[i] * b2 + w2 * gi * gi;
          const T denom = std::sqrt(pv[i]) / static_cast<T>(bias_correction2_sqrt) + static_cast<T>(o.eps);
          pp[i] = pp[i] + static_cast<T>(-step_size) * (pm[i] / denom);
        }
      });
    });
  }
}

// ---- helpers ----

std::pair<StateDict, StateDict> get_state_dict(Module& model, Optimizer& optimizer) {
  optimizer.init_state();
  return {model.state_dict(), optimizer.state_dict()};
}

void set_state_dict(Module& model, Optimizer& optimizer, const StateDict& model_state_dict,
                    const StateDict& optim_state_dict, bool strict) {
  model.load_state_dict(model_state_dict, strict);
  optimizer.load_state_dict(optim_state_dict);
}

}  // namespace dcpp
