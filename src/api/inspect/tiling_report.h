// Private to the inspectors: the chunk-tiling check of `dcpp verify`, which,
// unlike chunk_coverage.h's (that stops at the first fault), reports every
// overlap and every hole as a problem of the metadata file.
#pragma once

#include <string>
#include <vector>

#include "dcpp/inspect.h"

namespace dcpp {

// Reports overlapping chunks and chunks that leave part of the tensor
// uncovered (`boxes`: the key's non-empty chunks that lie inside `shape`);
// problems are attributed to `meta_path`.
void check_chunk_tiling(const std::string& key, const Shape& shape, std::vector<const ChunkMeta*> boxes,
                        const std::string& meta_path, VerifyReporter& reporter);

}  // namespace dcpp
