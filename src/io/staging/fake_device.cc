#include "io/staging/fake_device.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <thread>

#include "dcpp/error.h"

namespace dcpp {

void* FakeDevice::allocate_host(size_t nbytes) {
  void* p = ::operator new(nbytes == 0 ? kHostAlignment : nbytes, std::align_val_t{kHostAlignment});
  std::lock_guard lock(mu_);
  live_ += nbytes;
  peak_ = std::max(peak_, live_);
  return p;
}

void FakeDevice::free_host(void* p, size_t nbytes) noexcept {
  ::operator delete(p, std::align_val_t{kHostAlignment});
  std::lock_guard lock(mu_);
  live_ -= nbytes;
}

void FakeDevice::to_host(void* host, const void* device, size_t nbytes) { copy(host, device, nbytes, true); }
void FakeDevice::to_device(void* device, const void* host, size_t nbytes) { copy(device, host, nbytes, false); }

void FakeDevice::copy(void* dst, const void* src, size_t nbytes, bool to_host) {
  const size_t index = started_++;
  if (before_copy) before_copy(index);
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  if (fail_at >= 0 && index == static_cast<size_t>(fail_at)) {
    throw Error(ErrorCode::kIo, std::string("injected failure of copy ") + std::to_string(index) + " (" +
                                    (to_host ? "device to host" : "host to device") + ", " +
                                    std::to_string(nbytes) + " bytes) on " + device());
  }
  std::memcpy(dst, src, nbytes);
  {
    std::lock_guard lock(mu_);
    log_.push_back(Copy{to_host, nbytes});
  }
  ++done_;
}

size_t FakeDevice::host_bytes_live() const {
  std::lock_guard lock(mu_);
  return live_;
}

size_t FakeDevice::host_bytes_peak() const {
  std::lock_guard lock(mu_);
  return peak_;
}

std::vector<FakeDevice::Copy> FakeDevice::log() const {
  std::lock_guard lock(mu_);
  return log_;
}

}  // namespace dcpp
