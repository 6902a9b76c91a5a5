// Optimizers: update formulas against independent float64 references, state
// dicts keyed by names, and save/load/resume equal to an uninterrupted run.
#include "dcpp/optim.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dcpp/error.h"
#include "dcpp/testing/models.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

// One float64 parameter with a fixed gradient per step.
struct Scalarish {
  ParameterPtr p = std::make_shared<Parameter>(Tensor::empty({3}, DType::kFloat64));
  std::vector<NamedParameter> named() { return {{"w", p}}; }
};

void set(Tensor t, std::vector<double> v) {
  for (size_t i = 0; i < v.size(); ++i) t.set({static_cast<int64_t>(i)}, v[i]);
}

TEST(nn_Optimizer, SGDMomentumWeightDecayMatchesReference) {
  Scalarish s;
  set(s.p->local(), {1.0, -2.0, 0.5});
  SGD opt(s.named(), SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  const double grads[3][3] = {{0.5, -1.0, 2.0}, {0.25, 0.0, -1.0}, {-0.5, 1.5, 0.75}};
  double p[3] = {1.0, -2.0, 0.5}, buf[3] = {0, 0, 0};
  for (int step = 0; step < 3; ++step) {
    s.p->zero_grad();
    Tensor g = Tensor::empty({3}, DType::kFloat64);
    set(g, {grads[step][0], grads[step][1], grads[step][2]});
    s.p->accumulate_grad(g);
    opt.step();
    for (int i = 0; i < 3; ++i) {
      double d = grads[step][i] + 0.01 * p[i];
      buf[i] = step == 0 ? d : 0.9 * buf[i] + 0.9 * d;  // the first step takes d undamped
      p[i] -= 0.1 * buf[i];
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(s.p->local().at({i}), p[i], 1e-14);
  EXPECT_TRUE(opt.param_state("w").contains("momentum_buffer"));
}

TEST(nn_Optimizer, AdamWMatchesTextbookReference) {
  Scalarish s;
  set(s.p->local(), {1.0, -2.0, 0.5});
  AdamW opt(s.named(), AdamWOptions{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-3, .weight_decay = 0.1});
  const double grads[3][3] = {{0.5, -1.0, 2.0}, {0.25, 0.0, -1.0}, {-0.5, 1.5, 0.75}};
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int t = 1; t <= 3; ++t) {
    s.p->zero_grad();
    Tensor g = Tensor::empty({3}, DType::kFloat64);
    set(g, {grads[t - 1][0], grads[t - 1][1], grads[t - 1][2]});
    s.p->accumulate_grad(g);
    opt.step();
    for (int i = 0; i < 3; ++i) {  // Loshchilov & Hutter, as written in the paper
      const double gi = grads[t - 1][i];
      p[i] = p[i] - 0.01 * 0.1 * p[i];
      m[i] = 0.8 * m[i] + 0.2 * gi;
      v[i] = 0.95 * v[i] + 0.05 * gi * gi;
      const double mhat = m[i] / (1 - std::pow(0.8, t)), vhat = v[i] / (1 - std::pow(0.95, t));
      p[i] = p[i] - 0.01 * mhat / (std::sqrt(vhat) + 1e-3);
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(s.p->local().at({i}), p[i], 1e-12);
  StateDict st = opt.param_state("w");
  EXPECT_EQ(st.at("step").tensor().item(), 3.0);
  EXPECT_EQ(st.keys(), (std::vector<std::string>{"step", "exp_avg", "exp_avg_sq"}));
  EXPECT_NEAR(st.at("exp_avg").tensor().at({2}), m[2], 1e-14);
}

void train_steps(MLPModule& model, Optimizer& opt, int first, int count, uint64_t seed) {
  for (int s = first; s < first + count; ++s) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(s));
    Generator gen(rng());
    Tensor x = Tensor::uniform({4, 10}, -1, 1, gen);
    Tensor g = Tensor::uniform({4, 10}, -1, 1, gen);
    opt.zero_grad();
    model.forward(x);
    model.backward(g);
    opt.step();
  }
}

TEST(nn_Optimizer, StateDictKeyedByNames) {
  MLPModule model;
  AdamW opt(model, AdamWOptions{.lr = 0.01});
  EXPECT_EQ(opt.state_dict().at("state").dict().size(), 0u);  // lazily created
  train_steps(model, opt, 0, 1, testing::test_seed("Optimizer.StateDictKeyedByNames"));
  StateDict sd = opt.state_dict();
  const StateDict& state = sd.at("state").dict();
  EXPECT_EQ(state.keys(), (std::vector<std::string>{"net1.weight", "net1.bias", "net2.weight", "net2.bias"}));
  const StateDict& w = state.at("net1.weight").dict();
  EXPECT_EQ(w.at("exp_avg").as<Tensor>().shape(), (Shape{16, 10}));
  EXPECT_EQ(w.at("step").as<Tensor>().item(), 1.0);
  const StateDict& group = sd.at("param_groups").as<StateList>()[0].dict();
  EXPECT_EQ(group.at("lr").as<double>(), 0.01);
  const auto& params = group.at("params").as<StateList>();
  EXPECT_EQ(params.size(), 4u);
  EXPECT_EQ(params[2].as<std::string>(), "net2.weight");
  // The dict aliases the live state.
  EXPECT_TRUE(w.at("exp_avg").as<Tensor>().shares_storage_with(
      opt.param_state("net1.weight").at("exp_avg").as<Tensor>()));
  // init_state creates state for parameters without any.
  MLPModule fresh;
  SGD sgd(fresh, SGDOptions{.lr = 0.1, .momentum = 0.9});
  auto [msd, osd] = get_state_dict(fresh, sgd);
  EXPECT_EQ(msd.size(), 4u);
  EXPECT_TRUE(osd.at("state").dict().at("net2.bias").dict().contains("momentum_buffer"));
}

template <typename Opt, typename Options>
void check_resume(Options options, const char* name) {
  const uint64_t seed = testing::test_seed(name);
  MLPModule straight;
  Opt opt_straight(straight, options);
  train_steps(straight, opt_straight, 0, 4, seed);

  MLPModule first;
  Opt opt_first(first, options);
  train_steps(first, opt_first, 0, 2, seed);
  StateDict model_sd = first.state_dict().clone();
  StateDict optim_sd = opt_first.state_dict().clone();

  MLPModule resumed;  // same init, then overwritten by the checkpoint
  Opt opt_resumed(resumed, Options{});
  auto [live_model, live_optim] = get_state_dict(resumed, opt_resumed);
  set_state_dict(resumed, opt_resumed, model_sd, optim_sd);
  train_steps(resumed, opt_resumed, 2, 2, seed);
  for (auto& [k, v] : straight.state_dict())
    EXPECT_TRUE(equal(v.tensor(), resumed.state_dict().at(k).tensor())) << name << " " << k;
  // An unknown parameter name is rejected.
  StateDict bad = opt_first.state_dict().clone();
  bad.at("state").dict().set("net7.weight", bad.at("state").dict().at("net1.weight"));
  EXPECT_THROW(opt_resumed.load_state_dict(bad), Error);
}

TEST(nn_Optimizer, SaveLoadResumeEqualsUninterrupted) {
  check_resume<SGD>(SGDOptions{.lr = 0.25, .momentum = 0.9}, "Optimizer.Resume.SGD");
  check_resume<AdamW>(AdamWOptions{.lr = 0.02, .weight_decay = 0.05}, "Optimizer.Resume.AdamW");
}

}  // namespace
}  // namespace dcpp
