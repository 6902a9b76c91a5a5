// The device staging pipeline on a real GPU (make_cuda_copier): pinned,
// 4096-aligned buffers, a device tensor staged to the host piece by piece
// and checked against the original host bytes, and the same bytes staged
// back to a sentinel-filled device tensor. Skips, visibly, without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "dcpp/tensor.h"
#include "io/staging/device_to_host.h"
#include "io/staging/host_to_device.h"
#include "support/distributed.h"
#include "support/gpu.h"

namespace dcpp {
namespace {

TEST(io_StagingCuda, RoundTripThroughPinnedBuffers) {
  DCPP_REQUIRE_GPU();
  const size_t n = (size_t{40} << 20) + 4097;  // several buffers and a ragged tail
  std::vector<uint8_t> original(n);
  std::mt19937_64 rng(testing::test_seed("StagingCuda.RoundTrip"));
  for (auto& b : original) b = static_cast<uint8_t>(rng());
  Tensor host = Tensor::empty({static_cast<int64_t>(n)}, DType::kUInt8);
  std::memcpy(host.data_ptr(), original.data(), n);
  const Tensor dev = host.to(Device::kCuda);

  auto copier = make_cuda_copier(0);
  const StagingOptions options{size_t{24} << 20, size_t{8} << 20};  // 3 buffers of 8 MiB
  std::vector<uint8_t> staged(n, 0);
  {
    DeviceToHostStager stager(*copier, {DeviceRegion{dev.data_ptr(), n}}, options);
    size_t offset = 0;
    while (auto p = stager.next()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p->host) % 4096, 0u);
      EXPECT_EQ(p->offset, offset);
      std::memcpy(staged.data() + p->offset, p->host, p->nbytes);
      offset += p->nbytes;
      stager.release(*p);
    }
    EXPECT_EQ(offset, n);
    EXPECT_LE(stager.pool().allocated_bytes(), options.pool_bytes);
  }
  EXPECT_TRUE(staged == original);

  Tensor back = Tensor::full({static_cast<int64_t>(n)}, 0xEE, DType::kUInt8).to(Device::kCuda);
  {
    HostToDeviceStager stager(*copier, options);
    for (size_t off = 0; off < n; off += stager.buffer_bytes()) {
      const size_t len = std::min(stager.buffer_bytes(), n - off);
      std::byte* b = stager.acquire();
      std::memcpy(b, original.data() + off, len);
      stager.submit(b, static_cast<std::byte*>(back.data_ptr()) + off, len);
    }
    stager.finish();
    EXPECT_LE(stager.pool().allocated_bytes(), options.pool_bytes);
  }
  const Tensor check = back.to(Device::kCpu);
  EXPECT_EQ(std::memcmp(check.data_ptr(), original.data(), n), 0);
}

}  // namespace
}  // namespace dcpp
