#include "io/staging/device_to_host.h"

#include <algorithm>

#include "dcpp/error.h"

namespace dcpp {

DeviceToHostStager::DeviceToHostStager(DeviceCopier& copier, std::vector<DeviceRegion> regions,
                                       const StagingOptions& options)
    : copier_(copier), regions_(std::move(regions)), pool_(copier, options) {
  thread_ = std::thread([this] { copy_loop(); });
}

DeviceToHostStager::~DeviceToHostStager() {
  pool_.cancel();
  thread_.join();
}

void DeviceToHostStager::copy_loop() {
  size_t region = 0;
  size_t offset = 0;
  try {
    for (; region < regions_.size(); ++region) {
      const DeviceRegion& r = regions_[region];
      for (offset = 0; offset < r.nbytes || (r.nbytes == 0 && offset == 0);) {
        const size_t n = std::min(pool_.buffer_bytes(), r.nbytes - offset);
        std::byte* buffer = pool_.acquire();
        if (buffer == nullptr) return;  // cancelled: the consumer stopped
        try {
          if (n > 0) copier_.to_host(buffer, static_cast<const std::byte*>(r.data) + offset, n);
        } catch (...) {
          pool_.release(buffer);
          throw;
        }
        {
          std::lock_guard lock(mu_);
          ready_.push_back(StagedPiece{region, offset, buffer, n});
        }
        cv_.notify_all();
        if (n == 0) break;  // an empty region is one empty piece
        offset += n;
      }
    }
  } catch (const Error& e) {
    const std::string where = "staging " + copier_.device() + " to host, region " + std::to_string(region) +
                              " bytes [" + std::to_string(offset) + ", " +
                              std::to_string(offset + std::min(pool_.buffer_bytes(), regions_[region].nbytes - offset)) +
                              ")";
    std::lock_guard lock(mu_);
    error_ = std::make_exception_ptr(Error(e.code(), where + ": " + e.message()));
  } catch (...) {
    std::lock_guard lock(mu_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard lock(mu_);
    copying_done_ = true;
  }
  cv_.notify_all();
}

std::optional<StagedPiece> DeviceToHostStager::next() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || copying_done_; });
  if (!ready_.empty()) {
    StagedPiece piece = ready_.front();
    ready_.pop_front();
    return piece;
  }
  if (error_) std::rethrow_exception(error_);
  return std::nullopt;
}

void DeviceToHostStager::release(const StagedPiece& piece) {
  pool_.release(const_cast<std::byte*>(piece.host));
}

}  // namespace dcpp
