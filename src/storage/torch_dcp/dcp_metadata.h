// Private to the torch_dcp storage: PyTorch DCP's `.metadata` pickle to
// and from dcpp's Metadata.
#pragma once

#include <string>
#include <vector>

#include "dcpp/metadata.h"

namespace dcpp::torch_dcp {

// Decodes a `.metadata` pickle into dcpp Metadata: tensors with dtype,
// global shape and chunks whose location is (relative_path, offset,
// length) of the chunk's torch.save archive; bytes items as values of kind
// kBytes with their archive's location (the reader refines the kind);
// paths from planner_data. Error(kCorrupt) for structural problems,
// Error(kUnsupported) for unknown classes or transformed (compressed) items.
Metadata decode_dcp_metadata(const void* data, size_t size, const std::string& source);

// Encodes Metadata (locations filled) as PyTorch's `.metadata` pickle.
std::string encode_dcp_metadata(const Metadata& metadata);

}  // namespace dcpp::torch_dcp
