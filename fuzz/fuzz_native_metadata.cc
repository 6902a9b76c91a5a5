// Fuzz target: the native metadata decoder (decode_metadata, docs/format.md).
// The trailing XXH3-64 self-checksum is recomputed over the input first, so
// that mutations reach the structural parser instead of stopping at the
// checksum (a separate pass decodes the bytes as given). Whatever decodes
// must render as JSON and survive an encode → decode round trip unchanged.
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "dcpp/fs_storage.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp;
  fuzz::parses([&] { decode_metadata(data, size, "fuzz.metadata"); });
  if (size < 20) return 0;
  std::vector<uint8_t> fixed(data, data + size);
  const uint64_t sum = XXH3_64bits(fixed.data(), size - 8);
  for (int i = 0; i < 8; ++i) fixed[size - 8 + i] = static_cast<uint8_t>(sum >> (8 * i));
  Metadata md;
  if (!fuzz::parses([&] { md = decode_metadata(fixed.data(), fixed.size(), "fuzz.metadata"); })) return 0;
  (void)metadata_to_json(md, false);
  std::vector<std::byte> once = encode_metadata(md);
  Metadata again = decode_metadata(once.data(), once.size(), "re-encoded");
  std::vector<std::byte> twice = encode_metadata(again);
  if (once != twice) std::abort();  // the encoding of decoded metadata must be stable
  return 0;
}
