// FakeDevice — a DeviceCopier whose "device memory" is ordinary host memory:
// copies are memcpy, optionally delayed, with failures injected at a chosen
// copy, and every copy and host allocation counted. It lets the staging
// pipeline's ordering, memory bound, overlap and error paths be tested on a
// machine without a GPU, through the same interface the CUDA copier has.
// Device pointers handed to a stager are plain host pointers the test owns.
// Thread-safety: like any DeviceCopier; the counters may be read from any
// thread while copies run. Set the knobs before the copies start.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

#include "io/staging/device_copier.h"

namespace dcpp {

class FakeDevice final : public DeviceCopier {
 public:
  struct Copy {
    bool to_host;
    size_t nbytes;
  };

  // Each copy sleeps this long before moving its bytes.
  std::chrono::microseconds delay{0};
  // The copy with this 0-based index (counting both directions) throws
  // Error(kIo) instead of copying; -1 never.
  long fail_at = -1;
  // Runs at the start of every copy with its index (a test can block a copy here).
  std::function<void(size_t)> before_copy;

  std::string device() const override { return "fake:0"; }
  void* allocate_host(size_t nbytes) override;
  void free_host(void* p, size_t nbytes) noexcept override;
  void to_host(void* host, const void* device, size_t nbytes) override;
  void to_device(void* device, const void* host, size_t nbytes) override;

  size_t copies_started() const { return started_.load(); }
  size_t copies_done() const { return done_.load(); }
  size_t host_bytes_live() const;
  size_t host_bytes_peak() const;
  std::vector<Copy> log() const;

 private:
  void copy(void* dst, const void* src, size_t nbytes, bool to_host);

  std::atomic<size_t> started_{0};
  std::atomic<size_t> done_{0};
  mutable std::mutex mu_;
  size_t live_ = 0;
  size_t peak_ = 0;
  std::vector<Copy> log_;
};

}  // namespace dcpp
