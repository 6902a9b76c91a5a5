// Block codec of the native format (docs/format.md, "Encoded blocks"): the
// lossless encoding of one checksum block of floating-point (or any) data.
//
// Encoding 1, "grouped": the block's bytes are split into `width` byte
// groups (byte i goes to group i % width, so for bf16 the low bytes of
// every element, then the high bytes; width is the element size), and each
// group is stored raw or as one zstd frame, whichever is smaller. The
// sign-and-exponent bytes of trained weights carry far less information than
// the mantissa bytes, which zstd alone cannot exploit on interleaved bytes.
// A block is stored raw (encoding 0) when its encoding is not smaller.
//
// Ownership: a BlockEncoder / BlockDecoder owns its zstd context and scratch
// memory. Thread-safety: one object per thread; distinct objects are
// independent. The zstd headers stay inside block_codec.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "dcpp/dtype.h"
#include "dcpp/metadata.h"

namespace dcpp::fs_detail {

// Per-block encodings (the `encoding` byte of a stored block).
enum class BlockEncoding : uint8_t { kRaw = 0, kGrouped = 1 };
inline constexpr uint8_t kMaxBlockEncoding = 1;

// Group modes inside a grouped block.
enum class GroupMode : uint8_t { kRaw = 0, kZstd = 1 };

// How hard the encoder tries (the default is what the benchmark chose).
struct CodecOptions {
  // zstd's compression level for a group; levels below 1 are zstd's "fast"
  // levels, at which the encoder still Huffman-codes literals (forced), so
  // a group costs about its byte entropy at little match-finding cost. On
  // trained weights matches barely occur and only break up the literals: a
  // very fast level (-1000) came out smaller and faster than -1, -20, -100
  // and 1 in bench/codec_bench.cc on all-MiniLM-L6-v2 (docs/compression.md).
  int zstd_level = -1000;
  // A group whose byte-entropy estimate saves less than this fraction is
  // kept raw without calling zstd (the mantissa bytes of most weights).
  double min_saving = 0.02;
};

// File bytes [first, second) that hold blocks [first, last] of an item as
// stored (raw items: the blocks themselves; encoded: their stored ranges).
std::pair<uint64_t, uint64_t> stored_span(const StorageLocation& loc, uint64_t first, uint64_t last,
                                          uint64_t block_size);

// The byte-group width used for a dtype: its element size (1 for values).
unsigned group_width(DType dtype);

// Upper bound on the encoded size of an `n`-byte block (buffers are sized with it).
size_t max_encoded_size(size_t n, unsigned width);

class BlockEncoder {
 public:
  explicit BlockEncoder(CodecOptions options = {});
  ~BlockEncoder();
  BlockEncoder(const BlockEncoder&) = delete;
  BlockEncoder& operator=(const BlockEncoder&) = delete;

  // Encodes `n` bytes at `src` (width 1..8) into `dst` (room for
  // max_encoded_size(n, width)). Returns the encoded length, or 0 when the
  // encoding would not be smaller than `n` (store the block raw).
  size_t encode(const std::byte* src, size_t n, unsigned width, std::byte* dst);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class BlockDecoder {
 public:
  BlockDecoder();
  ~BlockDecoder();
  BlockDecoder(const BlockDecoder&) = delete;
  BlockDecoder& operator=(const BlockDecoder&) = delete;

  // Decodes the `stored` bytes of a grouped block into exactly `n` bytes at
  // `dst`. Returns an empty string on success, else what is wrong (the
  // caller names file, offset and key in its Error(kCorrupt)). Never reads
  // or writes outside the given ranges, whatever the input.
  std::string decode(const std::byte* stored, size_t stored_length, std::byte* dst, size_t n);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dcpp::fs_detail
