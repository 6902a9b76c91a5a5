// Modules: finite-difference checks of every backward (float64), init,
// names, state dicts (aliasing, strict/assign loading), meta construction.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "dcpp/error.h"
#include "dcpp/testing/models.h"
#include "dcpp/nn.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, DType dtype = DType::kFloat64, double lo = -1,
                     double hi = 1) {
  Tensor t = Tensor::empty(shape, DType::kFloat64);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = u(rng);
  return t.to(dtype);
}

double dot(const Tensor& a, const Tensor& b) {
  Tensor x = a.to(DType::kFloat64).contiguous(), y = b.to(DType::kFloat64).contiguous();
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += x.data<double>()[i] * y.data<double>()[i];
  return s;
}

// Checks backward against central differences of L = <grad_out, forward(x)>
// for the input and every parameter, all in float64.
void check_gradients(Module& m, const Tensor& x, const Tensor& grad_out) {
  const double eps = 1e-6;
  auto loss = [&](const Tensor& in) { return dot(grad_out, m.forward(in)); };
  m.zero_grad();
  m.forward(x);
  Tensor gx = m.backward(grad_out);
  for (int64_t i = 0; i < x.numel(); ++i) {
    Tensor xp = x.clone(), xm = x.clone();
    xp.data<double>()[i] += eps;
    xm.data<double>()[i] -= eps;
    double fd = (loss(xp) - loss(xm)) / (2 * eps);
    EXPECT_NEAR(gx.contiguous().data<double>()[i], fd, 1e-6 * (1 + std::abs(fd))) << "input element " << i;
  }
  for (auto& [name, p] : m.named_parameters()) {
    ASSERT_TRUE(p->has_grad()) << name;
    Tensor g = p->grad_local().contiguous();
    double* v = p->local().data<double>();
    for (int64_t i = 0; i < p->local().numel(); ++i) {
      const double saved = v[i];
      v[i] = saved + eps;
      double lp = loss(x);
      v[i] = saved - eps;
      double lm = loss(x);
      v[i] = saved;
      double fd = (lp - lm) / (2 * eps);
      EXPECT_NEAR(g.data<double>()[i], fd, 1e-6 * (1 + std::abs(fd))) << name << " element " << i;
    }
  }
}

// Inputs kept away from ReLU's kink so that central differences are smooth.
Tensor away_from_zero(Tensor t) {
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] >= 0 ? p[i] + 0.1 : p[i] - 0.1;
  return t;
}

const ModuleOptions kF64{Device::kCpu, DType::kFloat64};

TEST(nn_FiniteDifferences, Linear) {
  std::mt19937_64 rng(testing::test_seed("FiniteDifferences.Linear"));
  Generator gen(11);
  Linear lin(4, 3, true, kF64, gen);
  check_gradients(lin, random_tensor({5, 4}, rng), random_tensor({5, 3}, rng));
  Linear nobias(3, 2, false, kF64, gen);
  check_gradients(nobias, random_tensor({2, 3, 3}, rng), random_tensor({2, 3, 2}, rng));  // 3-d input
}

TEST(nn_FiniteDifferences, ReLU) {
  std::mt19937_64 rng(testing::test_seed("FiniteDifferences.ReLU"));
  ReLU relu;
  check_gradients(relu, away_from_zero(random_tensor({4, 6}, rng)), random_tensor({4, 6}, rng));
}

TEST(nn_FiniteDifferences, SequentialAndSeedModels) {
  std::mt19937_64 rng(testing::test_seed("FiniteDifferences.SequentialAndSeedModels"));
  Generator gen(3);
  Sequential seq({std::make_shared<Linear>(3, 5, true, kF64, gen), std::make_shared<ReLU>(),
                  std::make_shared<Linear>(5, 2, true, kF64, gen)});
  check_gradients(seq, random_tensor({4, 3}, rng), random_tensor({4, 2}, rng));
  MLPModule mlp(kF64);
  check_gradients(mlp, random_tensor({6, 10}, rng), random_tensor({6, 10}, rng));
  UnevenShardedModel uneven(kF64);
  check_gradients(uneven, random_tensor({6, 5}, rng), random_tensor({6, 1}, rng));
  // Residual blocks: the input gradient has the identity path added.
  GPTModel gpt(GPTConfig{.layers = 2, .hidden = 3, .ffn_hidden = 5}, kF64, /*seed=*/11);
  check_gradients(gpt, random_tensor({4, 3}, rng), random_tensor({4, 3}, rng));
}

TEST(nn_Module, BackwardAccumulatesUntilZeroGrad) {
  std::mt19937_64 rng(testing::test_seed("Module.BackwardAccumulatesUntilZeroGrad"));
  Linear lin(3, 2, true, kF64, default_generator());
  Tensor x = random_tensor({2, 3}, rng), g = random_tensor({2, 2}, rng);
  lin.forward(x);
  lin.backward(g);
  Tensor once = lin.weight()->grad_local().clone();
  lin.forward(x);
  lin.backward(g);
  for (int64_t i = 0; i < once.numel(); ++i)
    EXPECT_DOUBLE_EQ(lin.weight()->grad_local().data<double>()[i], 2 * once.data<double>()[i]);
  lin.zero_grad(false);
  EXPECT_EQ(lin.weight()->grad_local().at({0, 0}), 0.0);
  lin.zero_grad();
  EXPECT_FALSE(lin.weight()->has_grad());
}

TEST(nn_Module, LinearInitBoundsAndSeeding) {
  Generator gen(1);
  Linear lin(9, 40, true, {}, gen);
  const double bound = 1.0 / 3.0;
  for (const auto& t : {lin.weight()->local(), lin.bias()->local()}) {
    double lo = 1, hi = -1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      double v = t.contiguous().data<float>()[i];
      EXPECT_GE(v, -bound);
      EXPECT_LE(v, bound);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_LT(lo, -bound / 2);  // actually spread over the range
    EXPECT_GT(hi, bound / 2);
  }
  // manual_seed(5) in the constructor: identical models; an explicit generator
  // seeded the same way draws the same stream as the default generator.
  MLPModule a, b;
  manual_seed(123);
  Linear c(10, 16);
  Generator g5(5);
  Linear d(10, 16, true, {}, g5);
  EXPECT_TRUE(equal(a.net1().weight()->local(), b.net1().weight()->local()));
  EXPECT_TRUE(equal(a.net2().bias()->local(), b.net2().bias()->local()));
  EXPECT_TRUE(equal(a.net1().weight()->local(), d.weight()->local()));
  EXPECT_FALSE(equal(a.net1().weight()->local(), c.weight()->local()));
  EXPECT_EQ(a.net1().weight()->dtype(), DType::kFloat32);
}

TEST(nn_Module, DottedNamesInRegistrationOrder) {
  UnevenShardedModel m;
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"net1.weight", "net1.bias", "net2.weight", "net2.bias", "net3.weight",
                                             "net3.bias"}));
  EXPECT_EQ(m.parameters().size(), 6u);
  EXPECT_EQ(m.state_dict().keys(), names);
  EXPECT_EQ(&m.get_submodule("net2"), static_cast<Module*>(&m.net2()));
  EXPECT_THROW(m.get_submodule("net4"), Error);
  std::vector<std::string> mods;
  for (auto& [n, mod] : m.named_modules()) mods.push_back(n);
  EXPECT_EQ(mods, (std::vector<std::string>{"", "net1", "relu", "net2", "net3"}));
  Sequential s({std::make_shared<MLPModule>(), std::make_shared<ReLU>()});
  EXPECT_EQ(s.named_parameters()[2].first, "0.net2.weight");
}

// A module with a buffer: saved in the state dict, not trained.
class WithBuffer : public Module {
 public:
  WithBuffer() {
    lin_ = register_module("lin", std::make_shared<Linear>(2, 2));
    steps_ = register_buffer("steps", Tensor::zeros({1}, DType::kInt64));
  }
  std::string type_name() const override { return "WithBuffer"; }
  Tensor forward(const Tensor& x) override { return lin_->forward(x); }
  Tensor backward(const Tensor& g) override { return lin_->backward(g); }
  ParameterPtr steps_;
  std::shared_ptr<Linear> lin_;
};

TEST(nn_Module, BuffersAreSavedNotTrained) {
  WithBuffer m;
  EXPECT_EQ(m.state_dict().keys(), (std::vector<std::string>{"steps", "lin.weight", "lin.bias"}));
  EXPECT_EQ(m.parameters().size(), 2u);
  EXPECT_EQ(m.named_buffers().size(), 1u);
  m.state_dict().at("steps").tensor().fill_(7);
  EXPECT_EQ(m.steps_->local().at({0}), 7.0);
}

TEST(nn_Module, StateDictAliasesParameters) {
  MLPModule m;
  StateDict sd = m.state_dict();
  EXPECT_TRUE(sd.at("net1.weight").tensor().shares_storage_with(m.net1().weight()->local()));
  sd.at("net2.bias").tensor().fill_(0.5);  // an in-place load into the dict
  EXPECT_EQ(m.net2().bias()->local().at({3}), 0.5);
}

TEST(nn_Module, LoadStateDictCopiesAndValidates) {
  MLPModule src;
  manual_seed(77);
  Linear other(10, 16);
  MLPModule dst;
  dst.net1().weight()->local().copy_from(other.weight()->local());
  StateDict sd = src.state_dict().clone();
  dst.load_state_dict(sd);
  EXPECT_TRUE(equal(dst.net1().weight()->local(), src.net1().weight()->local()));
  EXPECT_FALSE(dst.net1().weight()->local().shares_storage_with(sd.at("net1.weight").tensor()));

  // strict: every missing and unexpected key is listed.
  StateDict partial = src.state_dict().clone();
  partial.erase("net1.bias");
  partial.erase("net2.weight");
  partial.set("net9.weight", Tensor::zeros({1}));
  try {
    dst.load_state_dict(partial);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    for (const char* k : {"net1.bias", "net2.weight", "net9.weight"})
      EXPECT_NE(e.message().find(k), std::string::npos) << e.message();
  }
  dst.load_state_dict(partial, /*strict=*/false);

  // A shape mismatch names the key, and nothing is written before validation.
  StateDict bad = src.state_dict().clone();
  bad.at("net1.weight").tensor().fill_(42);
  bad.set("net2.bias", Tensor::zeros({11}));
  Tensor before = dst.net1().weight()->local().clone();
  try {
    dst.load_state_dict(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("net2.bias"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(equal(dst.net1().weight()->local(), before));
  // dtype converts on copy, as copy_ does.
  StateDict f64;
  for (auto& [k, v] : src.state_dict()) f64.set(k, v.tensor().to(DType::kFloat64));
  dst.load_state_dict(f64);
  EXPECT_TRUE(equal(dst.net2().weight()->local(), src.net2().weight()->local()));
}

TEST(nn_Module, MetaModelMaterialisedByAssign) {
  UnevenShardedModel meta(Device::kMeta);
  for (auto& [name, p] : meta.named_parameters()) {
    EXPECT_TRUE(p->is_meta()) << name;
    EXPECT_EQ(p->local().storage(), nullptr) << name;
    EXPECT_THROW(p->local().data_ptr(), Error);
  }
  EXPECT_EQ(meta.net2().weight()->shape(), (Shape{15, 10}));
  EXPECT_THROW(meta.forward(Tensor::zeros({2, 5})), Error);
  UnevenShardedModel real;
  StateDict sd = real.state_dict().clone();
  meta.load_state_dict(sd);  // copying into meta is a no-op, as in PyTorch
  EXPECT_TRUE(meta.net1().weight()->is_meta());
  meta.load_state_dict(sd, true, /*assign=*/true);
  EXPECT_FALSE(meta.net1().weight()->is_meta());
  EXPECT_TRUE(meta.state_dict().at("net3.bias").tensor().shares_storage_with(sd.at("net3.bias").tensor()));
  Tensor x = Tensor::full({3, 5}, 0.25);
  EXPECT_TRUE(equal(meta.forward(x), real.forward(x)));
}

}  // namespace
}  // namespace dcpp
