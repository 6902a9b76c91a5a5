#include "io/staging/host_to_device.h"

#include <cstdio>

#include "dcpp/error.h"

namespace dcpp {

HostToDeviceStager::HostToDeviceStager(DeviceCopier& copier, const StagingOptions& options)
    : copier_(copier), pool_(copier, options) {
  thread_ = std::thread([this] { copy_loop(); });
}

HostToDeviceStager::~HostToDeviceStager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  pool_.cancel();
  thread_.join();
}

void HostToDeviceStager::throw_if_failed() {
  if (error_) std::rethrow_exception(error_);
}

std::byte* HostToDeviceStager::acquire() {
  {
    std::lock_guard lock(mu_);
    throw_if_failed();
  }
  std::byte* b = pool_.acquire();
  std::lock_guard lock(mu_);
  if (error_) {
    // Failed while this caller waited: the buffer goes back.
    if (b != nullptr) pool_.release(b);
    throw_if_failed();
  }
  if (b == nullptr) throw Error(ErrorCode::kInternal, "staging host to " + copier_.device() + ": stager stopped");
  return b;
}

void HostToDeviceStager::submit(std::byte* host, void* device_dst, size_t nbytes) {
  if (nbytes > pool_.buffer_bytes()) {
    pool_.release(host);
    throw Error(ErrorCode::kInvalidArgument, "staging host to " + copier_.device() + ": submit of " +
                                                 std::to_string(nbytes) + " bytes, more than a buffer (" +
                                                 std::to_string(pool_.buffer_bytes()) + ")");
  }
  {
    std::lock_guard lock(mu_);
    if (error_) {
      pool_.release(host);
      throw_if_failed();
    }
    queue_.push_back(Job{host, device_dst, nbytes});
    ++in_flight_;
  }
  cv_.notify_all();
}

void HostToDeviceStager::finish() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0 || error_ != nullptr; });
  throw_if_failed();
}

void HostToDeviceStager::copy_loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    std::exception_ptr failure;
    try {
      if (job.nbytes > 0) copier_.to_device(job.device, job.host, job.nbytes);
    } catch (const Error& e) {
      char addr[32];
      std::snprintf(addr, sizeof addr, "%p", job.device);
      failure = std::make_exception_ptr(Error(e.code(), "staging host to " + copier_.device() + ", " +
                                                            std::to_string(job.nbytes) + " bytes to device address " +
                                                            addr + ": " + e.message()));
    } catch (...) {
      failure = std::current_exception();
    }
    pool_.release(job.host);
    {
      std::lock_guard lock(mu_);
      --in_flight_;
      if (failure && !error_) error_ = failure;
      if (error_) {
        // Nothing after a failed copy is copied: its buffers go back.
        for (const Job& dropped : queue_) pool_.release(dropped.host);
        in_flight_ -= queue_.size();
        queue_.clear();
      }
    }
    cv_.notify_all();
  }
}

}  // namespace dcpp
