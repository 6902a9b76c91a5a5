// CUDA tensors on a GPU: allocation, host↔device and device↔device copies
// checked byte for byte against the original host bytes, zeros/fill, the
// host-only operations refusing device memory, and DLPack round trips of
// kDLCUDA tensors. Every test skips, visibly, where no GPU is present.
#include <gtest/gtest.h>
#include <dlpack/dlpack.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dcpp/dlpack.h"
#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "support/distributed.h"
#include "support/gpu.h"
#include "support/expect_error.h"

namespace dcpp {
namespace {

using testing::expect_error;

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// A host uint8 tensor holding `bytes` (a copy: the reference stays apart).
Tensor host_tensor(const std::vector<uint8_t>& bytes) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bytes.size())}, DType::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

bool same_bytes(const Tensor& host, const std::vector<uint8_t>& bytes) {
  return !host.is_cuda() && host.nbytes() == bytes.size() &&
         (bytes.empty() || std::memcmp(host.data_ptr(), bytes.data(), bytes.size()) == 0);
}

TEST(tensor_Cuda, AllocationOnEveryDevice) {
  DCPP_REQUIRE_GPU();
  for (int d = 0; d < cuda_device_count(); ++d) {
    Tensor t = Tensor::empty({3, 5}, DType::kFloat32, DeviceSpec(Device::kCuda, d));
    EXPECT_TRUE(t.is_cuda());
    EXPECT_EQ(t.device(), Device::kCuda);
    EXPECT_EQ(t.device_index(), d);
    EXPECT_EQ(t.storage()->device(), DeviceSpec(Device::kCuda, d));
    EXPECT_NE(t.data_ptr(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 256, 0u);
    EXPECT_EQ(t.to_string(), "tensor(..., device='cuda:" + std::to_string(d) + "', size=(3, 5), dtype=float32)");
    Tensor empty = Tensor::empty({0}, DType::kFloat32, DeviceSpec(Device::kCuda, d));
    EXPECT_EQ(empty.to(Device::kCpu).numel(), 0);
  }
}

TEST(tensor_Cuda, HostToDeviceToHostKeepsEveryByte) {
  DCPP_REQUIRE_GPU();
  for (size_t n : {size_t{1}, size_t{4097}, (size_t{3} << 20) + 5}) {
    SCOPED_TRACE(n);
    const auto bytes = random_bytes(n, testing::test_seed("Cuda.HostToDeviceToHost", n));
    const Tensor dev = host_tensor(bytes).to(Device::kCuda);
    ASSERT_TRUE(dev.is_cuda());
    const Tensor back = dev.to(Device::kCpu);
    EXPECT_FALSE(back.is_cuda());
    EXPECT_TRUE(same_bytes(back, bytes));
  }
  // A strided host view is made contiguous on the host first.
  Tensor m = Tensor::arange(12, DType::kInt32).view({3, 4}).transpose(0, 1);
  Tensor round = m.to(Device::kCuda).to(Device::kCpu);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(round.at({i, j}), static_cast<double>(j * 4 + i));
}

TEST(tensor_Cuda, DeviceToDeviceCopies) {
  DCPP_REQUIRE_GPU();
  const auto bytes = random_bytes(1 << 20, testing::test_seed("Cuda.DeviceToDevice"));
  const Tensor a = host_tensor(bytes).to(Device::kCuda);
  Tensor b = Tensor::empty(a.sizes(), DType::kUInt8, Device::kCuda);
  b.copy_from(a);
  EXPECT_TRUE(same_bytes(b.to(Device::kCpu), bytes));
  EXPECT_TRUE(same_bytes(a.clone().to(Device::kCpu), bytes));
  if (cuda_device_count() > 1) {
    const Tensor peer = a.to(DeviceSpec(Device::kCuda, 1));
    EXPECT_EQ(peer.device_index(), 1);
    EXPECT_TRUE(same_bytes(peer.to(Device::kCpu), bytes));
  }
}

TEST(tensor_Cuda, ZerosFillAndComparisons) {
  DCPP_REQUIRE_GPU();
  const Tensor z = Tensor::zeros({1000}, DType::kFloat64, Device::kCuda).to(Device::kCpu);
  for (int64_t i = 0; i < 1000; i += 97) EXPECT_EQ(z.at({i}), 0.0);
  Tensor f = Tensor::empty({7}, DType::kBFloat16, Device::kCuda);
  f.fill_(1.5);
  const Tensor fh = f.to(Device::kCpu);
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(fh.data<uint16_t>()[i], 0x3FC0);  // bf16 1.5
  EXPECT_TRUE(equal(f, Tensor::full({7}, 1.5, DType::kBFloat16)));
  EXPECT_TRUE(allclose(f, Tensor::full({7}, 1.5, DType::kFloat32)));
}

TEST(tensor_Cuda, HostOperationsRefuseDeviceMemory) {
  DCPP_REQUIRE_GPU();
  Tensor t = Tensor::zeros({4, 4}, DType::kFloat32, Device::kCuda);
  for (auto* op : {+[](Tensor& x) { x.at({0, 0}); }, +[](Tensor& x) { x.set({0, 0}, 1); },
                   +[](Tensor& x) { x.narrow(0, 0, 1).narrow(1, 0, 1).item(); }}) {
    const Error e = expect_error([&] { op(t); }, ErrorCode::kUnsupported);
    EXPECT_NE(e.message().find("cuda:0"), std::string::npos) << e.message();
  }
  // Strided views and dtype conversions do not cross the device boundary.
  expect_error([&] { t.transpose(0, 1).to(Device::kCpu); }, ErrorCode::kUnsupported);
  expect_error([&] { t.to(DType::kFloat64); }, ErrorCode::kUnsupported);
}

TEST(tensor_Cuda, DLPackRoundTripOfDeviceTensors) {
  DCPP_REQUIRE_GPU();
  const auto bytes = random_bytes(6 * 4 * 4, testing::test_seed("Cuda.DLPack"));
  const Tensor dev = host_tensor(bytes).view({6, 16}).to(Device::kCuda);
  DLManagedTensor* m = to_dlpack(dev);
  EXPECT_EQ(m->dl_tensor.device.device_type, kDLCUDA);
  EXPECT_EQ(m->dl_tensor.device.device_id, 0);
  EXPECT_EQ(m->dl_tensor.data, dev.data_ptr());
  const Tensor imported = from_dlpack(m);  // takes the export back: zero copy
  EXPECT_TRUE(imported.is_cuda());
  EXPECT_EQ(imported.device_index(), 0);
  EXPECT_EQ(imported.data_ptr(), dev.data_ptr());
  EXPECT_EQ(imported.sizes(), (Shape{6, 16}));
  EXPECT_TRUE(same_bytes(imported.view({96}).to(Device::kCpu), bytes));
}

}  // namespace
}  // namespace dcpp
