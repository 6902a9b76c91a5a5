#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp {

AlignedBuffer::AlignedBuffer(size_t size, bool zero) : size_(size) {
  if (size == 0) return;
  capacity_ = static_cast<size_t>(align_up(size, kIoAlignment));
  void* p = std::aligned_alloc(kIoAlignment, capacity_);
  if (p == nullptr) {
    throw Error(ErrorCode::kIo, "cannot allocate an aligned buffer of " + std::to_string(capacity_) + " bytes");
  }
  data_ = static_cast<std::byte*>(p);
  if (zero) std::memset(data_, 0, capacity_);
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

}  // namespace dcpp
