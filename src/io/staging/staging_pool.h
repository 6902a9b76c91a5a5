// StagingPool — a bounded set of equal, 4096-aligned host buffers that
// device copies land in (save) or leave from (load).
//
// Buffers come from the DeviceCopier (pinned on CUDA), are allocated on
// first use up to capacity() = pool_bytes / buffer_bytes of them, and are
// all freed by the destructor: the host memory held never exceeds
// pool_bytes, whatever the model size. acquire() blocks while every buffer
// is out; cancel() wakes the waiters (acquire then returns nullptr), which is
// how a stager stops its copy thread. The pool owns its buffers; holders
// borrow them between acquire and release. It outlives its holders, and the
// copier outlives it.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "io/staging/device_copier.h"

namespace dcpp {

struct StagingOptions {
  // Most host memory the staging holds (per stager), and each buffer's
  // size (rounded up to 4096; capped at pool_bytes rounded down to 4096).
  size_t pool_bytes = size_t{1} << 30;
  size_t buffer_bytes = size_t{64} << 20;
};

class StagingPool {
 public:
  // Throws Error(kInvalidArgument) when pool_bytes is under 4096.
  StagingPool(DeviceCopier& copier, const StagingOptions& options);
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  size_t buffer_bytes() const { return buffer_bytes_; }
  size_t capacity() const { return capacity_; }  // buffers
  // A free buffer of buffer_bytes(), blocking while none is; nullptr once cancelled.
  std::byte* acquire();
  void release(std::byte* buffer);
  void cancel();

  // Host bytes allocated so far (≤ capacity() × buffer_bytes()) and the most ever held out at once.
  size_t allocated_bytes() const;
  size_t peak_in_use_bytes() const;

 private:
  DeviceCopier& copier_;
  size_t buffer_bytes_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::byte*> all_;
  std::vector<std::byte*> free_;
  size_t in_use_ = 0;
  size_t peak_in_use_ = 0;
  bool cancelled_ = false;
};

}  // namespace dcpp
