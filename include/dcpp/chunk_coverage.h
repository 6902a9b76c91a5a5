// Chunk coverage: checks that the saved chunks of one tensor tile its global
// shape exactly (in bounds, no overlap, full coverage), in O(n log n). The
// save planner checks every plan with it, and every storage reader of a
// foreign format (safetensors, PyTorch DCP) checks the metadata it builds from
// that format's headers, so no loaded tensor has a hole. Pure functions.
#pragma once

#include <string>
#include <vector>

#include "dcpp/dtype.h"

namespace dcpp {

struct ChunkBox {
  Shape offsets;
  Shape sizes;
  int rank = 0;  // the rank that writes it, for error messages
};

// Throws Error(kInvalidArgument) naming `key`, the chunk(s) and rank(s) at
// fault. Chunks with zero volume are ignored.
void validate_chunk_tiling(const std::string& key, const Shape& global_shape, const std::vector<ChunkBox>& chunks);

}  // namespace dcpp
