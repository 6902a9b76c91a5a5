#include "io/staging/staging_pool.h"

#include <algorithm>

#include "dcpp/error.h"

namespace dcpp {

namespace {

constexpr size_t kAlign = DeviceCopier::kHostAlignment;

}  // namespace

StagingPool::StagingPool(DeviceCopier& copier, const StagingOptions& options) : copier_(copier) {
  if (options.pool_bytes < kAlign) {
    throw Error(ErrorCode::kInvalidArgument, "staging pool of " + std::to_string(options.pool_bytes) +
                                                 " bytes for " + copier.device() + ": it needs at least " +
                                                 std::to_string(kAlign) + " bytes");
  }
  const size_t pool = options.pool_bytes / kAlign * kAlign;
  const size_t wanted = std::max<size_t>((options.buffer_bytes + kAlign - 1) / kAlign * kAlign, kAlign);
  buffer_bytes_ = std::min(wanted, pool);
  capacity_ = pool / buffer_bytes_;
}

StagingPool::~StagingPool() {
  for (std::byte* b : all_) copier_.free_host(b, buffer_bytes_);
}

std::byte* StagingPool::acquire() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (cancelled_) return nullptr;
    if (!free_.empty()) {
      std::byte* b = free_.back();
      free_.pop_back();
      peak_in_use_ = std::max(peak_in_use_, ++in_use_);
      return b;
    }
    if (all_.size() < capacity_) {
      // Allocated under the lock: the count of buffers is the memory bound.
      auto* b = static_cast<std::byte*>(copier_.allocate_host(buffer_bytes_));
      all_.push_back(b);
      peak_in_use_ = std::max(peak_in_use_, ++in_use_);
      return b;
    }
    cv_.wait(lock);
  }
}

void StagingPool::release(std::byte* buffer) {
  {
    std::lock_guard lock(mu_);
    if (std::find(all_.begin(), all_.end(), buffer) == all_.end() ||
        std::find(free_.begin(), free_.end(), buffer) != free_.end()) {
      throw Error(ErrorCode::kInternal, "staging pool for " + copier_.device() +
                                            ": release of a buffer that is not out of this pool");
    }
    free_.push_back(buffer);
    --in_use_;
  }
  cv_.notify_one();
}

void StagingPool::cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

size_t StagingPool::allocated_bytes() const {
  std::lock_guard lock(mu_);
  return all_.size() * buffer_bytes_;
}

size_t StagingPool::peak_in_use_bytes() const {
  std::lock_guard lock(mu_);
  return peak_in_use_ * buffer_bytes_;
}

}  // namespace dcpp
