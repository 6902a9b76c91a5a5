// Fuzz target: the decoder of encoded blocks (src/storage/fs/block_codec.h,
// docs/format.md §2.1). Input: a u32 decoded length n (taken modulo 1 MiB,
// plus 1), then the stored bytes of one block. Whatever the input, the
// decoder must report a problem or fill exactly n bytes, never touch memory
// outside either buffer; what decodes must survive encode → decode unchanged.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_support.h"
#include "storage/fs/block_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp::fs_detail;
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  n = n % (1u << 20) + 1;
  // Exactly sized buffers, so AddressSanitizer sees any overrun.
  std::vector<std::byte> stored(size - 4), out(n);
  if (size > 4) std::memcpy(stored.data(), data + 4, size - 4);
  static BlockDecoder decoder;
  static BlockEncoder encoder;
  if (!decoder.decode(stored.data(), stored.size(), out.data(), n).empty()) return 0;
  for (unsigned width : {1u, 2u, 4u}) {
    std::vector<std::byte> enc(max_encoded_size(n, width)), back(n);
    const size_t m = encoder.encode(out.data(), n, width, enc.data());
    if (m == 0) continue;
    if (!decoder.decode(enc.data(), m, back.data(), n).empty() || back != out) std::abort();
  }
  return 0;
}
