// Devices without a GPU: parsing "cuda:N", names, and the errors a CUDA
// device that is absent gives (tensor creation, DLPack import), which name
// the device. Runs on every machine: the absent device is one past those
// this process sees.
#include <gtest/gtest.h>
#include <dlpack/dlpack.h>

#include <string>

#include "dcpp/dlpack.h"
#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "support/expect_error.h"

namespace dcpp {
namespace {

using testing::expect_error;

TEST(tensor_Device, ParseAndName) {
  struct Case {
    const char* name;
    Device type;
    int index;
    const char* canonical;
  };
  const Case cases[] = {
      {"cpu", Device::kCpu, 0, "cpu"},       {"meta", Device::kMeta, 0, "meta"},
      {"cuda", Device::kCuda, 0, "cuda:0"},  {"cuda:0", Device::kCuda, 0, "cuda:0"},
      {"cuda:3", Device::kCuda, 3, "cuda:3"}, {"cuda:12", Device::kCuda, 12, "cuda:12"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const DeviceSpec d = parse_device(c.name);
    EXPECT_EQ(d.type, c.type);
    EXPECT_EQ(d.index, c.index);
    EXPECT_EQ(device_string(d), c.canonical);
  }
  EXPECT_EQ(device_name(Device::kCuda), "cuda");
  for (const char* bad : {"cuda:", "cuda:-1", "cuda:1x", "cuda0", "gpu:0", "tpu", ""}) {
    const Error e = expect_error([&] { parse_device(bad); }, ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("'" + std::string(bad) + "'"), std::string::npos) << e.message();
  }
  EXPECT_EQ(device_from_name("cpu"), Device::kCpu);
  EXPECT_EQ(device_from_name("gpu"), device_from_name("cuda"));
  EXPECT_EQ(built_with_cuda() || cuda_device_count() == 0, true);
}

TEST(tensor_Device, AbsentCudaDeviceIsAnErrorNamingIt) {
  const int absent = cuda_device_count() + 1;
  const std::string label = "cuda:" + std::to_string(absent);
  const Error e = expect_error([&] { Tensor::empty({4}, DType::kFloat32, DeviceSpec(Device::kCuda, absent)); },
                               ErrorCode::kUnsupported);
  EXPECT_NE(e.message().find(label), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("16 bytes"), std::string::npos) << e.message();
  if (!built_with_cuda()) {
    EXPECT_NE(e.message().find("without CUDA"), std::string::npos) << e.message();
  }
  // Host tensors never go near the device: to(cpu) of a host tensor is itself.
  Tensor t = Tensor::arange(3);
  EXPECT_TRUE(t.to(Device::kCpu).shares_storage_with(t));
  EXPECT_EQ(t.device_spec(), DeviceSpec(Device::kCpu, 0));
  expect_error([&] { t.to(DeviceSpec(Device::kCuda, absent)); }, ErrorCode::kUnsupported);
  Tensor m = t.to(Device::kMeta);
  EXPECT_TRUE(m.is_meta());
  expect_error([&] { m.to(Device::kCpu); }, ErrorCode::kInvalidArgument);
}

TEST(tensor_Device, DLPackImportOfAnAbsentCudaDeviceKeepsOwnershipWithTheCaller) {
  static int deleted = 0;
  deleted = 0;
  float bytes[4] = {1, 2, 3, 4};
  int64_t shape[1] = {4};
  DLManagedTensor m{};
  m.dl_tensor.data = bytes;
  m.dl_tensor.device = DLDevice{kDLCUDA, cuda_device_count() + 2};
  m.dl_tensor.ndim = 1;
  m.dl_tensor.dtype = DLDataType{kDLFloat, 32, 1};
  m.dl_tensor.shape = shape;
  m.deleter = [](DLManagedTensor*) { ++deleted; };
  const Error e = expect_error([&] { from_dlpack(&m); }, ErrorCode::kUnsupported);
  EXPECT_NE(e.message().find("cuda:" + std::to_string(cuda_device_count() + 2)), std::string::npos) << e.message();
  EXPECT_EQ(deleted, 0);
  m.dl_tensor.device = DLDevice{kDLOpenCL, 0};
  expect_error([&] { from_dlpack(&m); }, ErrorCode::kUnsupported);
  EXPECT_EQ(deleted, 0);
}

}  // namespace
}  // namespace dcpp
