// DeviceToHostStager — the save side of device staging: copies a list of
// device regions into pool buffers on a copy thread, in order, while the
// consumer (the writer) writes the buffers already on the host.
//
// Each region is cut into pieces of at most buffer_bytes; a piece never
// spans two regions, so every piece starts at a 4096-aligned host address
// (what the writer's aligned item offsets and O_DIRECT need). The copy thread
// runs ahead of the consumer by at most the pool's capacity: it fills the
// next buffers while the consumer holds the current ones, and waits when all
// are out. next() hands pieces out in order; release() gives a buffer back.
// A failed copy ends the copying: the pieces already copied are still handed
// out, then next() throws the error (the same one on every later call),
// naming the device, region, offset and bytes. The destructor stops the copy
// thread (cancelling the pool) and joins it, so a consumer may stop early.
// The stager owns its pool and copy thread; the caller owns the copier and
// the device memory, which must outlive the stager.
// Thread-safety: next() and release() from the consumer's threads; release
// may come from any thread (writes finishing out of order).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "io/staging/staging_pool.h"

namespace dcpp {

struct DeviceRegion {
  const void* data;  // device pointer
  size_t nbytes;
};

struct StagedPiece {
  size_t region;            // index into the regions given
  size_t offset;            // byte offset of the piece in its region
  const std::byte* host;    // the pool buffer holding the bytes
  size_t nbytes;
};

class DeviceToHostStager {
 public:
  DeviceToHostStager(DeviceCopier& copier, std::vector<DeviceRegion> regions, const StagingOptions& options = {});
  ~DeviceToHostStager();
  DeviceToHostStager(const DeviceToHostStager&) = delete;
  DeviceToHostStager& operator=(const DeviceToHostStager&) = delete;

  // The next piece, once its bytes are on the host; nullopt after the last.
  std::optional<StagedPiece> next();
  void release(const StagedPiece& piece);
  const StagingPool& pool() const { return pool_; }

 private:
  void copy_loop();

  DeviceCopier& copier_;
  std::vector<DeviceRegion> regions_;
  StagingPool pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StagedPiece> ready_;
  bool copying_done_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once everything it uses exists
};

}  // namespace dcpp
