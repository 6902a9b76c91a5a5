// HostToDeviceStager — the load side of device staging: the reader fills
// pool buffers (file reads), submits each with its device destination, and a
// copy thread copies them to the device in submission order while the reader
// fills the next ones.
//
// acquire() gives a free buffer of buffer_bytes(), blocking while every
// buffer is in flight (so host memory stays within the pool); submit() queues
// its copy, after which the buffer belongs to the stager until copied;
// finish() waits for every submitted copy. A failed copy stops the copying:
// the rest of the queue is dropped and acquire, submit and finish throw that
// error, naming the device, destination and bytes. The destructor stops the
// copy thread without waiting for queued copies (a reader that failed need
// not finish). The stager owns its pool and thread; the caller owns the
// copier and the device memory, which must outlive it.
// Thread-safety: acquire and submit may be called from several reader
// threads; finish from one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "io/staging/staging_pool.h"

namespace dcpp {

class HostToDeviceStager {
 public:
  explicit HostToDeviceStager(DeviceCopier& copier, const StagingOptions& options = {});
  ~HostToDeviceStager();
  HostToDeviceStager(const HostToDeviceStager&) = delete;
  HostToDeviceStager& operator=(const HostToDeviceStager&) = delete;

  size_t buffer_bytes() const { return pool_.buffer_bytes(); }
  std::byte* acquire();
  // Copies host[0, nbytes) to `device_dst`; nbytes ≤ buffer_bytes().
  void submit(std::byte* host, void* device_dst, size_t nbytes);
  void finish();
  const StagingPool& pool() const { return pool_; }

 private:
  struct Job {
    std::byte* host;
    void* device;
    size_t nbytes;
  };
  void copy_loop();
  void throw_if_failed();  // mu_ held

  DeviceCopier& copier_;
  StagingPool pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  size_t in_flight_ = 0;  // queued or being copied
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once everything it uses exists
};

}  // namespace dcpp
