// The device staging pipeline against the host double (FakeDevice): bytes
// and order of every piece against the original bytes, the host memory
// bound, overlap of copies with the consumer's work, error propagation and
// early stops, for both directions. Runs on every machine.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "dcpp/dtype.h"
#include "dcpp/error.h"
#include "io/staging/device_to_host.h"
#include "io/staging/fake_device.h"
#include "io/staging/host_to_device.h"
#include "support/distributed.h"
#include "support/expect_error.h"

namespace dcpp {
namespace {

using testing::expect_error;
using namespace std::chrono_literals;

constexpr size_t kBuf = 8192;

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Waits up to 10 s for `pred`; a pipeline that never gets there fails the test instead of hanging it.
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(io_Staging, PoolSizesAndBounds) {
  FakeDevice dev;
  StagingPool dflt(dev, StagingOptions{});
  EXPECT_EQ(dflt.buffer_bytes(), size_t{64} << 20);
  EXPECT_EQ(dflt.capacity(), 16u);  // 1 GiB of 64 MiB buffers
  EXPECT_EQ(dflt.allocated_bytes(), 0u);  // nothing until used
  StagingPool odd(dev, StagingOptions{3 * 4096 + 100, 5000});
  EXPECT_EQ(odd.buffer_bytes(), 8192u);  // rounded up to 4096
  EXPECT_EQ(odd.capacity(), 1u);
  StagingPool tiny(dev, StagingOptions{4096, size_t{1} << 30});
  EXPECT_EQ(tiny.buffer_bytes(), 4096u);  // capped at the pool
  const Error e = expect_error([&] { StagingPool(dev, StagingOptions{4095, 4096}); }, ErrorCode::kInvalidArgument);
  EXPECT_NE(e.message().find("fake:0"), std::string::npos) << e.message();
}

TEST(io_Staging, DeviceToHostDeliversEveryByteInOrder) {
  const std::vector<size_t> sizes = {0, 1, 4096, 10000, 3 * kBuf + 17, kBuf};
  std::vector<std::vector<uint8_t>> device;  // the "device memory"
  std::vector<DeviceRegion> regions;
  for (size_t i = 0; i < sizes.size(); ++i) {
    device.push_back(random_bytes(sizes[i], testing::test_seed("Staging.D2HOrder", i)));
  }
  const auto original = device;  // the reference, never handed to the pipeline
  for (auto& d : device) regions.push_back(DeviceRegion{d.data(), d.size()});
  FakeDevice dev;
  dev.delay = 200us;
  std::vector<std::vector<uint8_t>> got(sizes.size());
  {
    DeviceToHostStager stager(dev, regions, StagingOptions{3 * kBuf, kBuf});
    size_t expect_region = 0;
    size_t expect_offset = 0;
    while (auto piece = stager.next()) {
      ASSERT_EQ(reinterpret_cast<uintptr_t>(piece->host) % 4096, 0u);
      // In order: regions ascending, offsets ascending and contiguous within a region.
      if (piece->region != expect_region) {
        EXPECT_EQ(expect_offset, sizes[expect_region]);
        expect_offset = 0;
      }
      EXPECT_GE(piece->region, expect_region);
      expect_region = piece->region;
      EXPECT_EQ(piece->offset, expect_offset);
      EXPECT_LE(piece->nbytes, kBuf);
      const auto* host = reinterpret_cast<const uint8_t*>(piece->host);
      got[piece->region].insert(got[piece->region].end(), host, host + piece->nbytes);
      expect_offset += piece->nbytes;
      stager.release(*piece);
    }
    EXPECT_EQ(expect_region, sizes.size() - 1);
    EXPECT_FALSE(stager.next().has_value());  // stays finished
    EXPECT_LE(stager.pool().allocated_bytes(), 3 * kBuf);
  }
  for (size_t i = 0; i < sizes.size(); ++i) EXPECT_TRUE(got[i] == original[i]) << "region " << i;
  EXPECT_EQ(dev.host_bytes_live(), 0u);  // every buffer freed
}

TEST(io_Staging, DeviceToHostNeverHoldsMoreThanThePool) {
  auto data = random_bytes(20 * kBuf, testing::test_seed("Staging.D2HBound"));
  FakeDevice dev;
  DeviceToHostStager stager(dev, {DeviceRegion{data.data(), data.size()}}, StagingOptions{4 * kBuf, kBuf});
  // The consumer holds everything it gets: the copier must stop at 4 buffers.
  std::vector<StagedPiece> held;
  for (int i = 0; i < 4; ++i) held.push_back(*stager.next());
  std::this_thread::sleep_for(50ms);  // room to overrun, if it could
  EXPECT_EQ(dev.copies_done(), 4u);
  EXPECT_EQ(dev.host_bytes_peak(), 4 * kBuf);
  size_t offset = held.back().offset + kBuf;
  stager.release(held.front());
  while (auto piece = stager.next()) {
    EXPECT_EQ(piece->offset, offset);
    EXPECT_EQ(std::memcmp(piece->host, data.data() + piece->offset, piece->nbytes), 0);
    offset += piece->nbytes;
    stager.release(*piece);
  }
  EXPECT_EQ(offset, data.size());
  EXPECT_LE(dev.host_bytes_peak(), 4 * kBuf);
  EXPECT_EQ(stager.pool().peak_in_use_bytes(), 4 * kBuf);
}

TEST(io_Staging, DeviceToHostCopiesAheadWhileTheConsumerWrites) {
  auto data = random_bytes(6 * kBuf, testing::test_seed("Staging.D2HOverlap"));
  FakeDevice dev;
  DeviceToHostStager stager(dev, {DeviceRegion{data.data(), data.size()}}, StagingOptions{3 * kBuf, kBuf});
  auto first = stager.next();
  ASSERT_TRUE(first);
  // While piece 0 is still being "written", the next two buffers get copied.
  EXPECT_TRUE(eventually([&] { return dev.copies_done() >= 3; })) << "copies did not run ahead of the consumer";
  stager.release(*first);
  while (auto p = stager.next()) stager.release(*p);
  EXPECT_EQ(dev.copies_done(), 6u);
}

TEST(io_Staging, DeviceToHostErrorReachesTheConsumerAfterTheGoodPieces) {
  auto data = random_bytes(5 * kBuf, testing::test_seed("Staging.D2HError"));
  FakeDevice dev;
  dev.fail_at = 2;
  DeviceToHostStager stager(dev, {DeviceRegion{data.data(), data.size()}}, StagingOptions{2 * kBuf, kBuf});
  for (size_t i = 0; i < 2; ++i) {
    auto p = stager.next();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->offset, i * kBuf);
    EXPECT_EQ(std::memcmp(p->host, data.data() + p->offset, kBuf), 0);
    stager.release(*p);
  }
  for (int again = 0; again < 2; ++again) {
    const Error e = expect_error([&] { stager.next(); }, ErrorCode::kIo);
    for (const char* part : {"fake:0", "region 0", "[16384, 24576)", "injected failure of copy 2"}) {
      EXPECT_NE(e.message().find(part), std::string::npos) << part << " in " << e.message();
    }
  }
  EXPECT_EQ(dev.copies_done(), 2u);
}

TEST(io_Staging, DeviceToHostStopsWhenTheConsumerStopsEarly) {
  auto data = random_bytes(50 * kBuf, testing::test_seed("Staging.D2HEarlyStop"));
  FakeDevice dev;
  {
    DeviceToHostStager stager(dev, {DeviceRegion{data.data(), data.size()}}, StagingOptions{2 * kBuf, kBuf});
    auto p = stager.next();  // then the writer fails: the stager goes, its copy thread blocked on the pool
    ASSERT_TRUE(p);
  }
  EXPECT_LE(dev.copies_done(), 2u);
  EXPECT_EQ(dev.host_bytes_live(), 0u);
}

TEST(io_Staging, HostToDeviceDeliversEveryByte) {
  const auto original = random_bytes(7 * kBuf + 123, testing::test_seed("Staging.H2D"));
  std::vector<uint8_t> device(original.size(), 0xEE);  // sentinel-filled destination
  FakeDevice dev;
  dev.delay = 200us;
  HostToDeviceStager stager(dev, StagingOptions{3 * kBuf, kBuf});
  for (size_t off = 0; off < original.size(); off += kBuf) {
    const size_t n = std::min(kBuf, original.size() - off);
    std::byte* b = stager.acquire();
    ASSERT_EQ(reinterpret_cast<uintptr_t>(b) % 4096, 0u);
    std::memcpy(b, original.data() + off, n);  // the "file read"
    stager.submit(b, device.data() + off, n);
  }
  stager.finish();
  EXPECT_TRUE(device == original);
  EXPECT_LE(dev.host_bytes_peak(), 3 * kBuf);
  EXPECT_EQ(dev.copies_done(), 8u);
}

TEST(io_Staging, HostToDeviceOverlapsAndBoundsTheReader) {
  const auto original = random_bytes(4 * kBuf, testing::test_seed("Staging.H2DOverlap"));
  std::vector<uint8_t> device(original.size(), 0);
  FakeDevice dev;
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  dev.before_copy = [&](size_t) {  // every copy waits until the test lets it go
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return go; });
  };
  HostToDeviceStager stager(dev, StagingOptions{2 * kBuf, kBuf});
  std::byte* a = stager.acquire();
  std::memcpy(a, original.data(), kBuf);
  stager.submit(a, device.data(), kBuf);
  // Copy 0 is under way; the reader fills the next buffer meanwhile.
  EXPECT_TRUE(eventually([&] { return dev.copies_started() == 1; }));
  std::byte* b = stager.acquire();
  std::memcpy(b, original.data() + kBuf, kBuf);
  stager.submit(b, device.data() + kBuf, kBuf);
  // Both buffers are in flight: a third acquire waits for a copy to finish.
  auto third = std::async(std::launch::async, [&] { return stager.acquire(); });
  EXPECT_EQ(third.wait_for(50ms), std::future_status::timeout);
  {
    std::lock_guard lock(mu);
    go = true;
  }
  cv.notify_all();
  std::byte* c = third.get();
  std::memcpy(c, original.data() + 2 * kBuf, 2 * kBuf / 2);
  stager.submit(c, device.data() + 2 * kBuf, kBuf);
  std::byte* d = stager.acquire();
  std::memcpy(d, original.data() + 3 * kBuf, kBuf);
  stager.submit(d, device.data() + 3 * kBuf, kBuf);
  stager.finish();
  EXPECT_EQ(std::memcmp(device.data(), original.data(), 2 * kBuf + kBuf / 2), 0);
  EXPECT_EQ(std::memcmp(device.data() + 3 * kBuf, original.data() + 3 * kBuf, kBuf), 0);
  EXPECT_EQ(dev.host_bytes_peak(), 2 * kBuf);
}

TEST(io_Staging, HostToDeviceErrorReachesFinishAndLaterCalls) {
  const auto original = random_bytes(4 * kBuf, testing::test_seed("Staging.H2DError"));
  std::vector<uint8_t> device(original.size(), 0);
  FakeDevice dev;
  dev.fail_at = 1;
  HostToDeviceStager stager(dev, StagingOptions{4 * kBuf, kBuf});
  for (size_t i = 0; i < 4; ++i) {
    try {
      std::byte* b = stager.acquire();
      std::memcpy(b, original.data() + i * kBuf, kBuf);
      stager.submit(b, device.data() + i * kBuf, kBuf);
    } catch (const Error& e) {
      // The failure may already be known: acquire and submit say so.
      EXPECT_NE(e.message().find("injected failure of copy 1"), std::string::npos) << e.message();
      break;
    }
  }
  const Error e = expect_error([&] { stager.finish(); }, ErrorCode::kIo);
  for (const char* part : {"fake:0", "8192 bytes", "injected failure of copy 1"}) {
    EXPECT_NE(e.message().find(part), std::string::npos) << part << " in " << e.message();
  }
  expect_error([&] { stager.acquire(); }, ErrorCode::kIo);
  EXPECT_EQ(std::memcmp(device.data(), original.data(), kBuf), 0);  // the copy before the failure landed
  EXPECT_EQ(dev.copies_done(), 1u);  // nothing after it was copied
}

TEST(io_Staging, CudaCopierNeedsADevice) {
  const int absent = cuda_device_count();  // one past the last device
  const Error e = expect_error([&] { make_cuda_copier(absent); }, ErrorCode::kUnsupported);
  EXPECT_NE(e.message().find("cuda:" + std::to_string(absent)), std::string::npos) << e.message();
}

}  // namespace
}  // namespace dcpp
