// Factories, views, element access, fill, comparisons, meta tensors, errors
// and printing, with expected values written out literally.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "dcpp/error.h"
#include "dcpp/tensor.h"

namespace dcpp {
namespace {

// Runs f, expects an Error with `code` whose message contains every needle.
template <typename F>
void expect_error(F&& f, ErrorCode code, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const char* n : needles) EXPECT_NE(e.message().find(n), std::string::npos) << "'" << n << "' not in: " << e.message();
  }
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> out;
  Tensor c = t.contiguous().to(DType::kFloat64);
  for (int64_t i = 0; i < c.numel(); ++i) out.push_back(c.data<double>()[i]);
  return out;
}

TEST(tensor_Tensor, FactoriesAndProperties) {
  Tensor u;
  EXPECT_FALSE(u.defined());
  Tensor e = Tensor::empty({2, 3, 4}, DType::kBFloat16);
  EXPECT_TRUE(e.defined());
  EXPECT_EQ(e.dim(), 3);
  EXPECT_EQ(e.sizes(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(e.size(-1), 4);
  EXPECT_EQ(e.stride(0), 12);
  EXPECT_EQ(e.numel(), 24);
  EXPECT_EQ(e.nbytes(), 48u);
  EXPECT_EQ(e.element_size(), 2u);
  EXPECT_TRUE(e.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(e.data_ptr()) % Storage::kAlignment, 0u);
  EXPECT_TRUE(e.storage()->owned());

  EXPECT_EQ(values(Tensor::zeros({2, 2}, DType::kInt16)), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(values(Tensor::full({3}, 2.5, DType::kFloat16)), (std::vector<double>{2.5, 2.5, 2.5}));
  EXPECT_EQ(values(Tensor::full({2}, -1, DType::kUInt8)), (std::vector<double>{255, 255}));
  EXPECT_EQ(values(Tensor::arange(5, DType::kInt64)), (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Tensor::arange(0).numel(), 0);
  EXPECT_EQ(contiguous_strides({3, 0, 2}), (Shape{2, 2, 1}));  // as PyTorch: zero dims count as 1

  expect_error([] { Tensor::empty({2, -1}); }, ErrorCode::kInvalidArgument, {"[2, -1]"});
  expect_error([] { Tensor::arange(-3); }, ErrorCode::kInvalidArgument, {"-3"});
  expect_error([&] { e.size(3); }, ErrorCode::kInvalidArgument, {"3", "[2, 3, 4]"});
}

TEST(tensor_Tensor, ZeroDimAndZeroSize) {
  Tensor s = Tensor::full({}, 3.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.item(), 3.5);
  EXPECT_EQ(s.at({}), 3.5);
  s.set({}, -2);
  EXPECT_EQ(s.clone().item(), -2);
  Tensor s2 = Tensor::zeros({});
  s2.copy_from(s);
  EXPECT_EQ(s2.item(), -2);
  EXPECT_EQ(s.to(DType::kInt8).item(), -2);
  EXPECT_EQ(s.view({1, 1}).sizes(), (Shape{1, 1}));
  EXPECT_EQ(Tensor::arange(1).view({}).dim(), 0);

  Tensor z = Tensor::zeros({3, 0, 2});
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.nbytes(), 0u);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_NO_THROW(z.data_ptr());
  Tensor zc = z.clone();
  EXPECT_EQ(zc.sizes(), (Shape{3, 0, 2}));
  Tensor zt = z.transpose(0, 2);
  EXPECT_TRUE(zt.is_contiguous());  // empty tensors are contiguous whatever their strides
  Tensor zd = Tensor::empty({2, 0, 3});
  zd.copy_from(zt);
  zd.fill_(1);
  EXPECT_TRUE(equal(z.to(DType::kInt32), Tensor::zeros({3, 0, 2}, DType::kInt32)));
  EXPECT_EQ(Tensor::zeros({4, 3}).narrow(0, 4, 0).numel(), 0);  // empty narrow at the end
  EXPECT_EQ(z.view({-1}).sizes(), (Shape{0}));
  EXPECT_EQ(z.view({2, 0}).sizes(), (Shape{2, 0}));
  expect_error([&] { z.view({0, -1, 3}); }, ErrorCode::kInvalidArgument, {"-1"});  // any size would do
  expect_error([&] { s.at({0}); }, ErrorCode::kInvalidArgument, {"[0]"});
  expect_error([&] { z.item(); }, ErrorCode::kInvalidArgument, {"0 elements"});
}

TEST(tensor_Tensor, Views) {
  Tensor a = Tensor::arange(12).view({3, 4});
  // narrow
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_EQ(n.sizes(), (Shape{3, 2}));
  EXPECT_EQ(n.strides(), (Shape{4, 1}));
  EXPECT_EQ(n.storage_offset(), 1);
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_TRUE(n.shares_storage_with(a));
  EXPECT_EQ(values(n), (std::vector<double>{1, 2, 5, 6, 9, 10}));
  EXPECT_TRUE(a.narrow(0, 1, 2).is_contiguous());
  EXPECT_EQ(values(a.narrow(-1, -2, 2)), (std::vector<double>{2, 3, 6, 7, 10, 11}));
  // slice with step; bounds clamp as in Python
  EXPECT_EQ(values(a.slice(1, 0, 4, 2)), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(values(a.slice(1, 1, 100, 2)), (std::vector<double>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(values(a.slice(0, -1, 3)), (std::vector<double>{8, 9, 10, 11}));
  EXPECT_EQ(a.slice(0, 2, 1).numel(), 0);
  EXPECT_EQ(a.slice(1, 0, 4, 3).sizes(), (Shape{3, 2}));
  EXPECT_EQ(a.slice(1, 0, 4, 3).strides(), (Shape{4, 3}));
  // select
  EXPECT_EQ(values(a.select(0, 1)), (std::vector<double>{4, 5, 6, 7}));
  EXPECT_EQ(values(a.select(1, -1)), (std::vector<double>{3, 7, 11}));
  EXPECT_EQ(a.select(1, 2).sizes(), (Shape{3}));
  // transpose
  Tensor t = a.transpose(0, 1);
  EXPECT_EQ(t.sizes(), (Shape{4, 3}));
  EXPECT_EQ(t.strides(), (Shape{1, 4}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(values(t), (std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  Tensor tc = t.contiguous();
  EXPECT_TRUE(tc.is_contiguous());
  EXPECT_FALSE(tc.shares_storage_with(a));
  EXPECT_TRUE(a.contiguous().shares_storage_with(a));  // already contiguous: self
  // view
  EXPECT_EQ(a.view({2, -1}).sizes(), (Shape{2, 6}));
  EXPECT_EQ(a.view({12}).at({7}), 7);
  // writes through views reach the base
  a.narrow(1, 1, 2).select(0, 2).fill_(-1);
  EXPECT_EQ(values(a), (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, 11}));
  t.set({3, 0}, 42);
  EXPECT_EQ(a.at({0, 3}), 42);
  EXPECT_EQ(a.at({-1, -1}), 11);
}

TEST(tensor_Tensor, ViewErrorsNameTheNumbers) {
  Tensor a = Tensor::zeros({2, 5});
  expect_error([&] { a.narrow(1, 3, 4); }, ErrorCode::kInvalidArgument, {"start=3", "length=4", "size 5", "[2, 5]"});
  expect_error([&] { a.narrow(0, -3, 1); }, ErrorCode::kInvalidArgument, {"start=-3"});
  expect_error([&] { a.narrow(2, 0, 1); }, ErrorCode::kInvalidArgument, {"dim 2", "2 dims"});
  expect_error([&] { a.narrow(0, 0, -1); }, ErrorCode::kInvalidArgument, {"length=-1"});
  expect_error([&] { a.select(1, 5); }, ErrorCode::kInvalidArgument, {"index=5", "size 5"});
  expect_error([&] { a.select(0, -3); }, ErrorCode::kInvalidArgument, {"index=-3"});
  expect_error([&] { a.slice(1, 0, 2, 0); }, ErrorCode::kInvalidArgument, {"step"});
  expect_error([&] { a.transpose(0, 2); }, ErrorCode::kInvalidArgument, {"dim 2"});
  expect_error([&] { a.view({3, 3}); }, ErrorCode::kInvalidArgument, {"[3, 3]", "10"});
  expect_error([&] { a.view({-1, -1}); }, ErrorCode::kInvalidArgument, {"-1"});
  expect_error([&] { a.view({3, -1}); }, ErrorCode::kInvalidArgument, {"10"});
  expect_error([&] { a.transpose(0, 1).view({10}); }, ErrorCode::kInvalidArgument, {"non-contiguous"});
  expect_error([&] { a.at({2, 0}); }, ErrorCode::kInvalidArgument, {"[2, 0]", "[2, 5]"});
  expect_error([&] { a.set({0}, 1); }, ErrorCode::kInvalidArgument, {"[0]"});
  expect_error([&] { a.item(); }, ErrorCode::kInvalidArgument, {"10 elements"});
}

TEST(tensor_Tensor, BlobsAndStorage) {
  float buf[6] = {0, 1, 2, 3, 4, 5};
  Tensor b = Tensor::from_blob(buf, {2, 3}, DType::kFloat32);
  EXPECT_FALSE(b.storage()->owned());
  EXPECT_EQ(b.data_ptr(), static_cast<void*>(buf));
  b.set({1, 2}, 50);
  EXPECT_EQ(buf[5], 50);
  // Strided (column-major) blob.
  Tensor c = Tensor::from_blob(buf, {3, 2}, DType::kFloat32, {1, 3});
  EXPECT_EQ(values(c), (std::vector<double>{0, 3, 1, 4, 2, 50}));
  // Negative stride: row order reversed, element [0,0] at buf + 3.
  Tensor r = Tensor::from_blob(buf + 3, {2, 3}, DType::kFloat32, {-3, 1});
  EXPECT_EQ(values(r), (std::vector<double>{3, 4, 50, 0, 1, 2}));

  int deleted = 0;
  {
    auto st = Storage::borrow(buf, sizeof buf, [&] { ++deleted; });
    Tensor v = Tensor::from_storage(st, 2, {2, 2}, {2, 1}, DType::kFloat32);
    EXPECT_EQ(values(v), (std::vector<double>{2, 3, 4, 50}));
    st.reset();
    EXPECT_EQ(deleted, 0);
    Tensor copy = v;
    v = Tensor();
    EXPECT_EQ(deleted, 0);
  }
  EXPECT_EQ(deleted, 1);
  auto st = Storage::allocate(40);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(st->data()) % 64, 0u);
  expect_error([&] { Tensor::from_storage(st, 8, {3}, {1}, DType::kFloat32); }, ErrorCode::kInvalidArgument,
               {"[8, 10]", "10 float32 elements", "40 bytes"});
  expect_error([&] { Tensor::from_storage(st, -1, {1}, {1}, DType::kFloat32); }, ErrorCode::kInvalidArgument, {"-1"});
  EXPECT_NO_THROW(Tensor::from_storage(st, 7, {3}, {1}, DType::kFloat32));
  EXPECT_NO_THROW(Tensor::from_storage(st, 10, {0}, {1}, DType::kFloat32));
}

TEST(tensor_Tensor, FillOnlyTouchesTheView) {
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kBFloat16, DType::kInt8, DType::kInt64, DType::kBool,
                   DType::kFloat8E5M2}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor a = Tensor::zeros({4, 5}, dt);
    a.slice(1, 1, 5, 2).narrow(0, 1, 2).fill_(3);
    const double v = dt == DType::kBool ? 1 : 3;
    EXPECT_EQ(values(a), (std::vector<double>{0, 0, 0, 0, 0,  //
                                              0, v, 0, v, 0,  //
                                              0, v, 0, v, 0,  //
                                              0, 0, 0, 0, 0}));
  }
}

TEST(tensor_Tensor, EqualIsBitExact) {
  Tensor a = Tensor::full({2}, 0.0);
  Tensor b = Tensor::full({2}, -0.0);
  EXPECT_FALSE(equal(a, b));  // -0 has other bits
  EXPECT_TRUE(allclose(a, b));
  Tensor n1 = Tensor::full({2}, NAN);
  Tensor n2 = n1.clone();
  EXPECT_TRUE(equal(n1, n2));  // same NaN bits
  EXPECT_FALSE(allclose(n1, n2));  // NaN is never close
  EXPECT_FALSE(equal(a, a.to(DType::kFloat64)));  // dtype differs
  EXPECT_FALSE(equal(a, Tensor::zeros({1, 2})));  // shape differs
  Tensor t = Tensor::arange(6).view({2, 3});
  EXPECT_TRUE(equal(t.transpose(0, 1), t.transpose(0, 1).contiguous()));  // strided vs contiguous
  EXPECT_FALSE(equal(t.transpose(0, 1), t.view({3, 2})));
  EXPECT_TRUE(equal(Tensor(), Tensor()));
  EXPECT_FALSE(equal(Tensor(), a));
}

TEST(tensor_Tensor, AllcloseAndMaxAbsDiff) {
  Tensor a = Tensor::full({3}, 1.0);
  Tensor b = Tensor::full({3}, 1.0 + 5e-6);
  EXPECT_TRUE(allclose(a, b));  // 5e-6 <= 1e-6 + 1e-5 * 1.000005
  Tensor c = Tensor::full({3}, 1.0 + 2e-5);
  EXPECT_FALSE(allclose(a, c));
  EXPECT_TRUE(allclose(a, c, 1e-4, 0));
  EXPECT_TRUE(allclose(a, Tensor::full({3}, 1, DType::kInt32)));  // mixed dtypes
  Tensor inf = Tensor::full({1}, INFINITY);
  EXPECT_TRUE(allclose(inf, inf.clone()));
  EXPECT_FALSE(allclose(inf, Tensor::full({1}, -INFINITY)));
  Tensor d = Tensor::arange(4, DType::kFloat64);
  Tensor e = d.clone();
  e.set({2}, 2.75);
  EXPECT_EQ(max_abs_diff(d, e), 0.75);
  EXPECT_EQ(max_abs_diff(d, d), 0.0);
  EXPECT_TRUE(std::isnan(max_abs_diff(Tensor::full({1}, NAN), Tensor::full({1}, 0.0))));
  expect_error([&] { allclose(a, Tensor::zeros({4})); }, ErrorCode::kInvalidArgument, {"[3]", "[4]"});
}

TEST(tensor_Tensor, MetaTensors) {
  Tensor m = Tensor::empty({4, 3}, DType::kBFloat16, Device::kMeta);
  EXPECT_TRUE(m.is_meta());
  EXPECT_EQ(m.device(), Device::kMeta);
  EXPECT_EQ(m.nbytes(), 24u);
  EXPECT_EQ(m.storage(), nullptr);
  expect_error([&] { m.data_ptr(); }, ErrorCode::kInvalidArgument, {"meta", "[4, 3]"});
  expect_error([&] { m.at({0, 0}); }, ErrorCode::kInvalidArgument, {"meta"});
  expect_error([&] { m.select(0, 1).select(0, 2).item(); }, ErrorCode::kInvalidArgument, {"meta"});
  Tensor c = m.clone();
  EXPECT_TRUE(c.is_meta());
  EXPECT_EQ(c.sizes(), (Shape{4, 3}));
  Tensor f = m.to(DType::kFloat32);
  EXPECT_TRUE(f.is_meta());
  EXPECT_EQ(f.dtype(), DType::kFloat32);
  Tensor v = m.narrow(0, 1, 2).transpose(0, 1);  // views work on shapes
  EXPECT_EQ(v.sizes(), (Shape{3, 2}));
  EXPECT_TRUE(v.is_meta());
  EXPECT_TRUE(Tensor::zeros({2}, DType::kFloat32, Device::kMeta).is_meta());
  EXPECT_NO_THROW(m.fill_(1));
  EXPECT_TRUE(equal(m, c));
  EXPECT_FALSE(equal(m, Tensor::zeros({4, 3}, DType::kBFloat16)));
  EXPECT_FALSE(m.shares_storage_with(c));
  expect_error([&] { allclose(m, m); }, ErrorCode::kInvalidArgument, {"meta"});
  expect_error([&] { m.narrow(0, 3, 2); }, ErrorCode::kInvalidArgument, {"start=3"});
}

TEST(tensor_Tensor, Printing) {
  EXPECT_EQ(Tensor::arange(4).view({2, 2}).to_string(), "tensor([[0., 1.],\n        [2., 3.]], dtype=float32)");
  EXPECT_EQ(Tensor::arange(8).view({2, 2, 2}).to_string(),
            "tensor([[[0., 1.],\n"
            "         [2., 3.]],\n"
            "\n"
            "        [[4., 5.],\n"
            "         [6., 7.]]], dtype=float32)");
  EXPECT_EQ(Tensor::full({2}, 1.5).to_string(), "tensor([1.5000, 1.5000], dtype=float32)");
  EXPECT_EQ(Tensor::arange(12).view({3, 4}).transpose(0, 1).narrow(0, 0, 2).to_string(),
            "tensor([[0., 4., 8.],\n        [1., 5., 9.]], dtype=float32)");
  EXPECT_EQ(Tensor::arange(12).view({3, 4}).transpose(0, 1).to_string(),
            "tensor([[ 0.,  4.,  8.],\n        [ 1.,  5.,  9.],\n        [ 2.,  6., 10.],\n"
            "        [ 3.,  7., 11.]], dtype=float32)");
  EXPECT_EQ(Tensor::arange(3, DType::kInt64).to_string(), "tensor([0, 1, 2], dtype=int64)");
  Tensor neg = Tensor::arange(3, DType::kInt32);
  neg.set({0}, -10);
  EXPECT_EQ(neg.to_string(), "tensor([-10,   1,   2], dtype=int32)");
  Tensor b = Tensor::zeros({2}, DType::kBool);
  b.set({1}, 1);
  EXPECT_EQ(b.to_string(), "tensor([False,  True], dtype=bool)");
  EXPECT_EQ(Tensor::full({}, 2.5).to_string(), "tensor(2.5000, dtype=float32)");
  EXPECT_EQ(Tensor::full({}, 7, DType::kInt8).to_string(), "tensor(7, dtype=int8)");
  EXPECT_EQ(Tensor::zeros({0, 3}).to_string(), "tensor([], size=(0, 3), dtype=float32)");
  EXPECT_EQ(Tensor::zeros({0}, DType::kFloat16).to_string(), "tensor([], dtype=float16)");
  EXPECT_EQ(Tensor::empty({2, 3}, DType::kFloat32, Device::kMeta).to_string(),
            "tensor(..., device='meta', size=(2, 3), dtype=float32)");
  EXPECT_EQ(Tensor::empty({5}, DType::kInt8, Device::kMeta).to_string(),
            "tensor(..., device='meta', size=(5,), dtype=int8)");
  Tensor special = Tensor::empty({3});
  special.set({0}, 1.5);
  special.set({1}, NAN);
  special.set({2}, -INFINITY);
  EXPECT_EQ(special.to_string(), "tensor([1.5000,    nan,   -inf], dtype=float32)");
  Tensor sci = Tensor::full({2}, 1e-5, DType::kFloat64);
  sci.set({1}, 12345.0);
  EXPECT_EQ(sci.to_string(), "tensor([1.0000e-05, 1.2345e+04], dtype=float64)");
  EXPECT_EQ(Tensor::arange(100).to_string(),
            "tensor([ 0.,  1.,  2.,  ..., 97., 98., 99.], dtype=float32)");
  EXPECT_EQ(Tensor::arange(64).view({8, 8}).to_string(8),
            "tensor([[ 0.,  1.,  2.,  ...,  5.,  6.,  7.],\n"
            "        [ 8.,  9., 10.,  ..., 13., 14., 15.],\n"
            "        [16., 17., 18.,  ..., 21., 22., 23.],\n"
            "        ...,\n"
            "        [40., 41., 42.,  ..., 45., 46., 47.],\n"
            "        [48., 49., 50.,  ..., 53., 54., 55.],\n"
            "        [56., 57., 58.,  ..., 61., 62., 63.]], dtype=float32)");
  std::ostringstream os;
  os << Tensor::arange(2);
  EXPECT_EQ(os.str(), "tensor([0., 1.], dtype=float32)");
  EXPECT_EQ(Tensor().to_string(), "tensor(undefined)");
}

}  // namespace
}  // namespace dcpp
