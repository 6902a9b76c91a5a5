// Generator: the exact xoshiro256** / splitmix64 stream (literal values
// computed with an independent Python implementation of the published
// algorithms), reproducibility of the random factories, and loose
// distribution checks (deterministic for the fixed seeds used).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "dcpp/tensor.h"

namespace dcpp {
namespace {

TEST(tensor_Generator, LiteralStreamForSeed42) {
  Generator g(42);
  EXPECT_EQ(g.next_u64(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(g.next_u64(), 0x6104d9866d113a7eull);
  EXPECT_EQ(g.next_u64(), 0xae17533239e499a1ull);
  EXPECT_EQ(g.next_u64(), 0xecb8ad4703b360a1ull);

  g.manual_seed(42);
  EXPECT_EQ(g.next_uniform(), 0.08386297105988216);
  EXPECT_EQ(g.next_uniform(), 0.3789802506626686);
  EXPECT_EQ(g.next_uniform(), 0.6800434110281394);

  // Box–Muller on (1 - u1, u2): cos then sin of the same pair.
  g.manual_seed(42);
  EXPECT_NEAR(g.next_normal(), -0.303263064678738, 1e-15);
  EXPECT_NEAR(g.next_normal(), 0.28846173882942383, 1e-15);
  EXPECT_NEAR(g.next_normal(), 1.3438117634372806, 1e-15);
  EXPECT_NEAR(g.next_normal(), -0.6879751798977497, 1e-15);
}

TEST(tensor_Generator, SeedZeroAndReseeding) {
  // splitmix64 from 0 gives the state e220a8397b1dcdaf 6e789e6aa1b965f4
  // 06c45d188009454f f88bb8a8724c81ec (the published splitmix64 outputs);
  // xoshiro256** then returns rotl(s1 * 5, 7) * 9.
  Generator a(0);
  EXPECT_EQ(a.next_u64(), 0x99ec5f36cb75f2b4ull);
  Generator b(0);
  b.next_u64();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next_u64(), b.next_u64());
  a.next_normal();  // leaves a spare normal behind
  a.manual_seed(7);
  b.manual_seed(7);
  EXPECT_EQ(a.next_normal(), b.next_normal());  // reseeding discarded the spare
  Generator c(1);
  Generator d(2);
  EXPECT_NE(c.next_u64(), d.next_u64());
}

TEST(tensor_Generator, FactoriesAreReproducible) {
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kBFloat16, DType::kFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    Generator g1(123), g2(123), g3(124);
    Tensor a = Tensor::uniform({17, 5}, -2, 3, g1, dt);
    Tensor b = Tensor::uniform({17, 5}, -2, 3, g2, dt);
    Tensor c = Tensor::uniform({17, 5}, -2, 3, g3, dt);
    EXPECT_TRUE(equal(a, b));
    EXPECT_FALSE(equal(a, c));
    EXPECT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()), 0);
    Tensor n1 = Tensor::normal({33}, 1, 2, g1, dt);
    Tensor n2 = Tensor::normal({33}, 1, 2, g2, dt);
    EXPECT_TRUE(equal(n1, n2));
  }
  // Row-major draw order: element i is low + (high - low) * the i-th uniform.
  Generator g(42);
  Tensor u = Tensor::uniform({3}, 10, 20, g, DType::kFloat64);
  EXPECT_EQ(u.at({0}), 10 + 10 * 0.08386297105988216);
  EXPECT_EQ(u.at({1}), 10 + 10 * 0.3789802506626686);
  EXPECT_EQ(u.at({2}), 10 + 10 * 0.6800434110281394);
  g.manual_seed(42);
  Tensor n = Tensor::normal({2}, 5, 0.5, g, DType::kFloat64);
  EXPECT_NEAR(n.at({0}), 5 + 0.5 * -0.303263064678738, 1e-14);
  EXPECT_NEAR(n.at({1}), 5 + 0.5 * 0.28846173882942383, 1e-14);
}

TEST(tensor_Generator, DistributionsLookRight) {
  Generator g(2024);
  const int n = 200000;
  Tensor u = Tensor::uniform({n}, -1, 3, g, DType::kFloat64);
  double sum = 0, mn = 1e9, mx = -1e9;
  for (int i = 0; i < n; ++i) {
    const double v = u.data<double>()[i];
    sum += v;
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  EXPECT_GE(mn, -1.0);
  EXPECT_LT(mx, 3.0);
  EXPECT_NEAR(sum / n, 1.0, 0.02);  // sd of the mean ~ 0.0026
  Tensor z = Tensor::normal({n}, 2, 3, g, DType::kFloat64);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double v = z.data<double>()[i];
    s1 += v;
    s2 += v * v;
  }
  const double mean = s1 / n;
  const double var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 2.0, 0.05);
  EXPECT_NEAR(std::sqrt(var), 3.0, 0.05);
}

}  // namespace
}  // namespace dcpp
