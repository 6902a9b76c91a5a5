// Private helpers shared by the native format's writer, reader and codec.
#pragma once

#include <xxhash.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/paths.h"

namespace dcpp::fs_detail {

static_assert(std::endian::native == std::endian::little,
              "the native format stores little-endian bytes and this code copies them as they lie in memory");

// XXH3-64 with seed 0 and the default secret, as docs/format.md specifies.
inline uint64_t hash64(const void* data, size_t length) { return XXH3_64bits(data, length); }

inline uint64_t block_count(uint64_t byte_length, uint64_t block_size) {
  return byte_length / block_size + (byte_length % block_size != 0 ? 1 : 0);
}

// One checksum per block of [data, data + length).
inline std::vector<uint64_t> block_checksums(const std::byte* data, uint64_t length, uint64_t block_size) {
  std::vector<uint64_t> sums;
  sums.reserve(block_count(length, block_size));
  for (uint64_t at = 0; at < length; at += block_size) {
    uint64_t n = length - at < block_size ? length - at : block_size;
    sums.push_back(hash64(data + at, n));
  }
  return sums;
}

inline std::string join_path(const std::string& dir, const std::string& name) { return paths::join(dir, name); }

inline std::string hex64(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[i] = digits[v & 0xf];
    v >>= 4;
  }
  return s;
}

}  // namespace dcpp::fs_detail
