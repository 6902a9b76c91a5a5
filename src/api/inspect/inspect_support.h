// Private to the inspectors: what the native and foreign inspectors check
// alike, and the path helpers of their messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dcpp/inspect.h"
#include "io/paths.h"
#include "dcpp/metadata.h"

namespace dcpp {

using paths::base_name;
using paths::join;
using paths::parent_of;
using paths::quoted;

// One KeySummary per tensor (its non-empty chunks, their bytes and files),
// then per value, each group in key order.
std::vector<KeySummary> summarize_keys(const Metadata& md);

enum class ChunkCheck {
  kMalformed,  // offsets or sizes of the wrong rank: nothing more can be checked
  kUnusable,   // out of bounds, or (raw bytes) a byte length that does not match
  kUsable,
};
// Checks one chunk of tensor `t` (described as `who` in messages): its
// dimensions, its box inside the global shape and, where the format stores
// raw bytes, its byte length against its dtype. Reports each problem against
// `meta_path`; `numel` gets the chunk's element count.
ChunkCheck check_chunk_geometry(const std::string& who, const TensorMeta& t, const ChunkMeta& c, bool raw_bytes,
                                const std::string& meta_path, VerifyReporter& rep, uint64_t& numel);

// No two chunks overlap and together they cover the tensor. Unlike
// chunk_coverage.h's check (which stops at the first fault), reports every
// overlap (the first 20, then a count) and any hole. Sweeps along the
// dimension with the most distinct offsets, so the usual shardings (any one
// dimension split) compare each chunk with its neighbours only. `boxes`: the
// key's usable, non-empty chunks.
void check_chunk_tiling(const std::string& key, const Shape& shape, std::vector<const ChunkMeta*> boxes,
                        const std::string& meta_path, VerifyReporter& rep);

}  // namespace dcpp
