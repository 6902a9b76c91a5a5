// DLPack 0.6 export/import: type codes per dtype, zero-copy round trips of
// strided views, producer deleters, byte_offset, and the unsupported cases.
#include <gtest/gtest.h>
#include <dlpack/dlpack.h>

#include <cstring>
#include <random>

#include "dcpp/dlpack.h"
#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

struct Expressible {
  DType dtype;
  uint8_t code;
  uint8_t bits;
};
const Expressible kExpressible[] = {
    {DType::kFloat16, kDLFloat, 16}, {DType::kFloat32, kDLFloat, 32}, {DType::kFloat64, kDLFloat, 64},
    {DType::kBFloat16, kDLBfloat, 16}, {DType::kInt8, kDLInt, 8},     {DType::kInt16, kDLInt, 16},
    {DType::kInt32, kDLInt, 32},     {DType::kInt64, kDLInt, 64},     {DType::kUInt8, kDLUInt, 8},
};

TEST(tensor_DLPack, RoundTripEveryExpressibleDType) {
  std::mt19937_64 rng(testing::test_seed("DLPack.RoundTripEveryExpressibleDType"));
  for (const Expressible& x : kExpressible) {
    SCOPED_TRACE(dtype_name(x.dtype));
    Tensor base = Tensor::empty({5, 6}, x.dtype);
    auto* p = static_cast<unsigned char*>(base.data_ptr());
    for (size_t i = 0; i < base.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
    Tensor view = base.narrow(0, 1, 3).transpose(0, 1);  // [6, 3], strides [1, 6], offset 6
    const long uses_before = base.storage().use_count();

    DLManagedTensor* m = to_dlpack(view);
    ASSERT_NE(m, nullptr);
    const DLTensor& dl = m->dl_tensor;
    EXPECT_EQ(dl.device.device_type, kDLCPU);
    EXPECT_EQ(dl.dtype.code, x.code);
    EXPECT_EQ(dl.dtype.bits, x.bits);
    EXPECT_EQ(dl.dtype.lanes, 1);
    ASSERT_EQ(dl.ndim, 2);
    EXPECT_EQ(dl.shape[0], 6);
    EXPECT_EQ(dl.shape[1], 3);
    ASSERT_NE(dl.strides, nullptr);
    EXPECT_EQ(dl.strides[0], 1);
    EXPECT_EQ(dl.strides[1], 6);
    EXPECT_EQ(static_cast<char*>(dl.data) + dl.byte_offset,
              static_cast<char*>(base.data_ptr()) + 6 * dtype_size(x.dtype));
    EXPECT_GT(base.storage().use_count(), uses_before);  // the export holds the storage

    Tensor back = from_dlpack(m);
    EXPECT_EQ(back.dtype(), x.dtype);
    EXPECT_EQ(back.sizes(), view.sizes());
    EXPECT_EQ(back.strides(), view.strides());
    EXPECT_EQ(back.data_ptr(), view.data_ptr());  // zero copy
    EXPECT_TRUE(equal(back, view));
    back.set({5, 2}, 1);  // writes are visible to the producer
    EXPECT_EQ(view.at({5, 2}), 1);
    back = Tensor();  // the last handle: the consumer calls the producer's deleter
    EXPECT_EQ(base.storage().use_count(), uses_before);
  }
}

TEST(tensor_DLPack, ExportKeepsStorageAlive) {
  DLManagedTensor* m;
  {
    Tensor t = Tensor::arange(10, DType::kInt32);
    m = to_dlpack(t.slice(0, 1, 10, 3));
  }
  const auto* d = static_cast<const int32_t*>(m->dl_tensor.data);
  EXPECT_EQ(d[0], 1);
  EXPECT_EQ(d[m->dl_tensor.strides[0] * 2], 7);
  m->deleter(m);  // frees everything (checked under ASan)
}

// A producer-owned DLManagedTensor over a plain buffer.
struct Producer {
  std::vector<double> buf;
  std::vector<int64_t> shape, strides;
  int deleted = 0;
  DLManagedTensor managed{};

  DLManagedTensor* make(int64_t byte_offset, bool with_strides) {
    DLTensor& t = managed.dl_tensor;
    t.data = buf.data();
    t.device = {kDLCPU, 0};
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = {kDLFloat, 64, 1};
    t.shape = shape.data();
    t.strides = with_strides ? strides.data() : nullptr;
    t.byte_offset = static_cast<uint64_t>(byte_offset);
    managed.manager_ctx = this;
    managed.deleter = [](DLManagedTensor* self) { ++static_cast<Producer*>(self->manager_ctx)->deleted; };
    return &managed;
  }
};

TEST(tensor_DLPack, ImportHonoursStridesByteOffsetAndDeleter) {
  Producer p;
  p.buf = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  p.shape = {2, 3};
  p.strides = {1, 4};  // column-major-ish over a 4-wide row
  Tensor t = from_dlpack(p.make(2 * sizeof(double), true));
  // element [i, j] = buf[2 + i + 4 j]
  EXPECT_EQ(t.at({0, 0}), 2);
  EXPECT_EQ(t.at({1, 0}), 3);
  EXPECT_EQ(t.at({0, 2}), 10);
  EXPECT_EQ(t.at({1, 2}), 11);
  EXPECT_FALSE(t.is_contiguous());
  Tensor view = t.select(0, 1);
  t = Tensor();
  EXPECT_EQ(p.deleted, 0);  // a view still holds it
  EXPECT_EQ(view.at({1}), 7);
  view = Tensor();
  EXPECT_EQ(p.deleted, 1);

  // Null strides mean compact row-major.
  Tensor c = from_dlpack(p.make(0, false));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.at({1, 0}), 3);
  c = Tensor();
  EXPECT_EQ(p.deleted, 2);

  // 0-d and zero-size tensors.
  p.shape = {};
  Tensor s = from_dlpack(p.make(5 * sizeof(double), false));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 5);
  s = Tensor();
  p.shape = {0, 3};
  Tensor z = from_dlpack(p.make(0, false));
  EXPECT_EQ(z.numel(), 0);
  z = Tensor();
  EXPECT_EQ(p.deleted, 4);
}

TEST(tensor_DLPack, UnsupportedTypesAndDevices) {
  for (DType dt : {DType::kBool, DType::kFloat8E4M3FN, DType::kFloat8E5M2}) {
    SCOPED_TRACE(dtype_name(dt));
    try {
      to_dlpack(Tensor::zeros({2}, dt));
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(e.message().find(dtype_name(dt)), std::string::npos) << e.message();
    }
  }
  try {
    to_dlpack(Tensor::empty({2}, DType::kFloat32, Device::kMeta));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }

  Producer p;
  p.buf = {1, 2};
  p.shape = {2};
  DLManagedTensor* m = p.make(0, false);
  m->dl_tensor.device = {kDLCUDA, 0};
  try {
    from_dlpack(m);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
  m->dl_tensor.device = {kDLCPU, 0};
  for (DLDataType bad : {DLDataType{kDLComplex, 64, 1}, DLDataType{kDLFloat, 8, 1}, DLDataType{kDLUInt, 16, 1},
                         DLDataType{kDLFloat, 32, 4}}) {
    m->dl_tensor.dtype = bad;
    try {
      from_dlpack(m);
      FAIL() << "no error for code " << int(bad.code) << " bits " << int(bad.bits);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    }
  }
  EXPECT_EQ(p.deleted, 0);  // a rejected import leaves ownership with the caller
  EXPECT_THROW(from_dlpack(nullptr), Error);
}

}  // namespace
}  // namespace dcpp
