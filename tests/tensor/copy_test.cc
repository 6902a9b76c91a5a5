// Strided copy (copy_from, clone, contiguous) against an element-by-element
// reference over random shapes and random views on both sides, and
// dtype-converting copies against conversions worked out in the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

const DType kAllDTypes[] = {DType::kFloat32, DType::kFloat64,      DType::kFloat16,   DType::kBFloat16,
                            DType::kInt8,    DType::kInt16,        DType::kInt32,     DType::kInt64,
                            DType::kUInt8,   DType::kBool,         DType::kFloat8E4M3FN, DType::kFloat8E5M2};

// Calls f(index) for every index of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F&& f) {
  if (shape_numel(shape) == 0) return;
  Shape idx(shape.size(), 0);
  while (true) {
    f(idx);
    int d = static_cast<int>(shape.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// Address of one element, computed from sizes/strides alone.
std::byte* element_address(const Tensor& t, const Shape& idx) {
  int64_t off = 0;
  for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * t.strides()[i];
  return static_cast<std::byte*>(t.data_ptr()) + off * static_cast<int64_t>(t.element_size());
}

void fill_random_bytes(const Tensor& t, std::mt19937_64& rng) {
  auto* p = reinterpret_cast<unsigned char*>(t.storage()->data());
  for (size_t i = 0; i < t.storage()->nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
}

// Permutes dims with transposes so that result dim i is input dim perm[i].
Tensor permute(Tensor t, std::vector<int64_t> perm) {
  std::vector<int64_t> cur(perm.size());
  std::iota(cur.begin(), cur.end(), 0);  // cur[i] = input dim now at position i
  for (size_t i = 0; i < perm.size(); ++i) {
    size_t j = i;
    while (cur[j] != perm[i]) ++j;
    if (j != i) {
      t = t.transpose(static_cast<int64_t>(i), static_cast<int64_t>(j));
      std::swap(cur[i], cur[j]);
    }
  }
  return t;
}

// A random view of shape `shape` into a larger fresh base tensor: dims
// permuted in memory, sliced with steps and offsets, sometimes an extra
// selected dim. Returns {view, base}.
std::pair<Tensor, Tensor> random_view(const Shape& shape, DType dtype, std::mt19937_64& rng, std::string& desc) {
  const size_t rank = shape.size();
  std::vector<int64_t> step(rank), start(rank), base_size(rank);
  for (size_t i = 0; i < rank; ++i) {
    step[i] = 1 + static_cast<int64_t>(rng() % 3);
    start[i] = static_cast<int64_t>(rng() % 3);
    base_size[i] = start[i] + std::max<int64_t>(shape[i] * step[i], 0) + static_cast<int64_t>(rng() % 3);
  }
  std::vector<int64_t> perm(rank);  // memory order of the base
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  const bool extra = rng() % 3 == 0;
  Shape base_shape;
  if (extra) base_shape.push_back(3);
  for (size_t i = 0; i < rank; ++i) base_shape.push_back(base_size[perm[i]]);
  Tensor base = Tensor::empty(base_shape, dtype);
  Tensor v = base;
  desc += "base " + shape_to_string(base_shape);
  if (extra) {
    const int64_t k = static_cast<int64_t>(rng() % 3);
    v = v.select(0, k);
    desc += " select(0," + std::to_string(k) + ")";
  }
  // inverse: logical dim perm[i] sits at position i; put it at position perm[i]
  std::vector<int64_t> inv(rank);
  for (size_t i = 0; i < rank; ++i) inv[perm[i]] = static_cast<int64_t>(i);
  v = permute(v, inv);
  for (size_t i = 0; i < rank; ++i) {
    v = v.slice(static_cast<int64_t>(i), start[i], start[i] + shape[i] * step[i], step[i]);
  }
  desc += " perm[";
  for (size_t i = 0; i < rank; ++i) desc += (i ? "," : "") + std::to_string(perm[i]);
  desc += "] start" + shape_to_string(start) + " step" + shape_to_string(step) + " strides " +
          shape_to_string(v.strides());
  EXPECT_EQ(v.sizes(), shape) << desc;
  return {v, base};
}

Shape random_shape(std::mt19937_64& rng) {
  const size_t rank = rng() % 5;  // 0..4
  Shape s(rank);
  for (auto& d : s) d = (rng() % 8 == 0) ? 0 : 1 + static_cast<int64_t>(rng() % 6);
  return s;
}

TEST(tensor_StridedCopy, RandomViewsMatchElementReference) {
  std::mt19937_64 rng(testing::test_seed("StridedCopy.RandomViewsMatchElementReference"));
  for (int iter = 0; iter < 1500; ++iter) {
    const DType dtype = kAllDTypes[rng() % std::size(kAllDTypes)];
    const Shape shape = random_shape(rng);
    std::string sdesc, ddesc;
    auto [src, src_base] = random_view(shape, dtype, rng, sdesc);
    auto [dst, dst_base] = random_view(shape, dtype, rng, ddesc);
    fill_random_bytes(src_base, rng);
    fill_random_bytes(dst_base, rng);
    // Reference: the destination base with the view's elements copied one
    // at a time by address.
    Tensor expected = Tensor::empty(dst_base.sizes(), dtype);
    std::memcpy(expected.storage()->data(), dst_base.storage()->data(), dst_base.storage()->nbytes());
    Tensor expected_view = Tensor::from_storage(expected.storage(), dst.storage_offset(), dst.sizes(), dst.strides(),
                                                dtype);
    const size_t es = dtype_size(dtype);
    for_each_index(shape, [&](const Shape& idx) {
      std::memcpy(element_address(expected_view, idx), element_address(src, idx), es);
    });
    dst.copy_from(src);
    ASSERT_TRUE(equal(dst_base, expected))
        << "iteration " << iter << " dtype " << dtype_name(dtype) << " shape " << shape_to_string(shape)
        << "\n src: " << sdesc << "\n dst: " << ddesc;

    // clone and contiguous give the same elements in row-major order.
    Tensor c = src.clone();
    ASSERT_TRUE(c.is_contiguous());
    ASSERT_FALSE(c.shares_storage_with(src));
    Tensor ref = Tensor::empty(shape, dtype);
    size_t k = 0;
    for_each_index(shape, [&](const Shape& idx) {
      std::memcpy(static_cast<std::byte*>(ref.data_ptr()) + es * k++, element_address(src, idx), es);
    });
    ASSERT_TRUE(equal(c, ref)) << "clone, iteration " << iter << " src: " << sdesc;
    ASSERT_TRUE(equal(src.contiguous(), ref)) << "contiguous, iteration " << iter;
  }
}

TEST(tensor_StridedCopy, ContiguousWindowAndTransposeLarge) {
  // Shapes big enough for the memcpy-per-row and tiled-transpose paths.
  std::mt19937_64 rng(testing::test_seed("StridedCopy.ContiguousWindowAndTransposeLarge"));
  for (DType dtype : {DType::kFloat32, DType::kFloat64, DType::kBFloat16, DType::kUInt8}) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor wide = Tensor::empty({67, 301}, dtype);
    fill_random_bytes(wide, rng);
    Tensor window = wide.narrow(1, 45, 200);
    Tensor dst = Tensor::empty({67, 200}, dtype);
    dst.copy_from(window);
    const size_t es = dtype_size(dtype);
    for (int64_t r = 0; r < 67; ++r) {
      ASSERT_EQ(std::memcmp(static_cast<std::byte*>(dst.data_ptr()) + r * 200 * es,
                            static_cast<std::byte*>(wide.data_ptr()) + (r * 301 + 45) * es, 200 * es),
                0)
          << "row " << r;
    }
    Tensor t = wide.transpose(0, 1);  // [301, 67]
    Tensor tc = Tensor::empty({301, 67}, dtype);
    tc.copy_from(t);
    for (int64_t i = 0; i < 301; ++i) {
      for (int64_t j = 0; j < 67; ++j) {
        ASSERT_EQ(std::memcmp(static_cast<std::byte*>(tc.data_ptr()) + (i * 67 + j) * es,
                              static_cast<std::byte*>(wide.data_ptr()) + (j * 301 + i) * es, es),
                  0)
            << i << "," << j;
      }
    }
  }
}

TEST(tensor_StridedCopy, ShapeMismatchAndMeta) {
  Tensor a = Tensor::zeros({2, 3});
  Tensor b = Tensor::zeros({3, 2});
  try {
    a.copy_from(b);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("[2, 3]"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("[3, 2]"), std::string::npos) << e.message();
  }
  Tensor m = Tensor::empty({2, 3}, DType::kFloat32, Device::kMeta);
  EXPECT_NO_THROW(m.copy_from(a));  // a meta destination only checks shapes
  try {
    a.copy_from(m);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

// ---- dtype-converting copies ----

// The value copy_ stores for an exactly representable source value v.
double expected_converted(DType dst, double v) {
  if (is_floating_point(dst)) return v;  // test values are exact in every float dtype
  if (dst == DType::kBool) return v != 0 ? 1 : 0;
  const int64_t t = static_cast<int64_t>(std::trunc(v));
  const int bits = static_cast<int>(dtype_size(dst) * 8);
  if (bits == 64) return static_cast<double>(t);
  const int64_t mod = int64_t{1} << bits;
  int64_t w = ((t % mod) + mod) % mod;  // wrap modulo 2^bits
  if (dst != DType::kUInt8 && w >= mod / 2) w -= mod;
  return static_cast<double>(w);
}

std::vector<double> source_values(DType src) {
  if (src == DType::kBool) return {0, 1};
  if (src == DType::kUInt8) return {0, 1, 3, 7, 12};
  if (is_integral(src)) return {0, 1, -1, 3, 7, -6, 12, -12};
  return {0, 1, -1, 2.5, -2.5, 3, 7, -6, 0.5, 12, -0.5};
}

TEST(tensor_ConvertingCopy, AllDTypePairsThroughStridedViews) {
  std::mt19937_64 rng(testing::test_seed("ConvertingCopy.AllDTypePairsThroughStridedViews"));
  for (DType s : kAllDTypes) {
    for (DType d : kAllDTypes) {
      SCOPED_TRACE(std::string(dtype_name(s)) + " -> " + std::string(dtype_name(d)));
      const std::vector<double> vals = source_values(s);
      const Shape shape = {3, 1 + static_cast<int64_t>(rng() % 4), 4};
      std::string sdesc, ddesc;
      auto [src, src_base] = random_view(shape, s, rng, sdesc);
      auto [dst, dst_base] = random_view(shape, d, rng, ddesc);
      std::vector<double> chosen;
      for_each_index(shape, [&](const Shape& idx) {
        chosen.push_back(vals[rng() % vals.size()]);
        src.set(idx, chosen.back());
      });
      dst.copy_from(src);
      size_t k = 0;
      for_each_index(shape, [&](const Shape& idx) {
        const double v = chosen[k++];
        ASSERT_EQ(dst.at(idx), expected_converted(d, v))
            << "source value " << v << " at " << shape_to_string(idx) << "\n src: " << sdesc << "\n dst: " << ddesc;
      });
      // to() agrees; it is a contiguous copy, or self for the same dtype.
      Tensor t = src.to(d);
      if (s == d) EXPECT_TRUE(t.shares_storage_with(src));
      else EXPECT_TRUE(t.is_contiguous() && !t.shares_storage_with(src));
      EXPECT_EQ(t.dtype(), d);
      k = 0;
      for_each_index(shape, [&](const Shape& idx) { ASSERT_EQ(t.at(idx), expected_converted(d, chosen[k++])); });
    }
  }
}

TEST(tensor_ConvertingCopy, SpecialValues) {
  const float inf = INFINITY;
  Tensor f = Tensor::empty({6});
  const float vals[] = {NAN, inf, -inf, 1e6f, -3.7f, 70000.0f};
  std::memcpy(f.data_ptr(), vals, sizeof vals);

  Tensor h = f.to(DType::kFloat16);
  const uint16_t* hp = h.data<uint16_t>();
  const uint16_t want_h[] = {0x7E00, 0x7C00, 0xFC00, 0x7C00, float_to_half(-3.7f), 0x7C00};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hp[i], want_h[i]) << i;
  EXPECT_EQ(want_h[4], 0xC366);  // -3.7 in binary16 (literal)

  Tensor e4 = f.to(DType::kFloat8E4M3FN);
  const uint8_t* e4p = e4.data<uint8_t>();
  EXPECT_EQ(e4p[0], 0x7F);
  EXPECT_EQ(e4p[1], 0x7F);
  EXPECT_EQ(e4p[2], 0xFF);
  EXPECT_EQ(e4p[3], 0x7F);
  EXPECT_EQ(e4p[4], 0xC7);  // -3.7 rounds to -3.75 = -(1.875 * 2^1): exponent field 8, mantissa 7
  EXPECT_EQ(e4p[5], 0x7F);

  // Float to integer truncates toward zero; NaN becomes 0 (documented).
  Tensor g = Tensor::empty({4}, DType::kFloat64);
  const double gv[] = {-3.7, 3.7, NAN, 255.9};
  std::memcpy(g.data_ptr(), gv, sizeof gv);
  Tensor i32 = g.to(DType::kInt32);
  EXPECT_EQ(i32.data<int32_t>()[0], -3);
  EXPECT_EQ(i32.data<int32_t>()[1], 3);
  EXPECT_EQ(i32.data<int32_t>()[2], 0);
  EXPECT_EQ(i32.data<int32_t>()[3], 255);
  Tensor b = g.to(DType::kBool);  // nonzero (NaN included) is true
  EXPECT_EQ(b.data<uint8_t>()[0], 1);
  EXPECT_EQ(b.data<uint8_t>()[2], 1);
  Tensor zero = Tensor::zeros({1}, DType::kFloat64).to(DType::kBool);
  EXPECT_EQ(zero.data<uint8_t>()[0], 0);

  // Large int64 values survive int64 -> int64 and wrap into int32 exactly.
  Tensor big = Tensor::empty({2}, DType::kInt64);
  big.data<int64_t>()[0] = (int64_t{1} << 53) + 1;
  big.data<int64_t>()[1] = (int64_t{1} << 32) + 5;
  EXPECT_EQ(big.clone().data<int64_t>()[0], (int64_t{1} << 53) + 1);
  EXPECT_EQ(big.to(DType::kInt32).data<int32_t>()[1], 5);
}

TEST(tensor_ConvertingCopy, BFloat16MatchesScalarConversionOnTransposedSource) {
  std::mt19937_64 rng(testing::test_seed("ConvertingCopy.BFloat16MatchesScalarConversionOnTransposedSource"));
  std::uniform_real_distribution<float> dist(-1000.f, 1000.f);
  Tensor f = Tensor::empty({40, 33});
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = dist(rng);
  Tensor t = f.transpose(0, 1);
  Tensor b = Tensor::empty({33, 40}, DType::kBFloat16);
  b.copy_from(t);
  for (int64_t i = 0; i < 33; ++i) {
    for (int64_t j = 0; j < 40; ++j) {
      ASSERT_EQ(b.data<uint16_t>()[i * 40 + j], float_to_bfloat16(f.data<float>()[j * 33 + i])) << i << "," << j;
    }
  }
}

}  // namespace
}  // namespace dcpp
