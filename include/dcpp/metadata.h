// Checkpoint metadata: what a checkpoint holds and where every byte lives.
//
// Written once by the coordinator, last, when every data file is durable; its
// presence marks a checkpoint complete. Format-neutral: the native format
// encodes it (src/storage/fs, documented in docs/format.md), other formats
// build it from their own headers. Plain values; no thread-safety concerns.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "dcpp/dtype.h"

namespace dcpp {

// How one checksum block of an item is stored when the item's blocks are
// encoded (native format version 2): its encoding (0 = raw, 1 = byte-grouped
// entropy coding; docs/format.md) and the byte range it occupies, relative to
// the item's byte_offset.
struct StoredBlock {
  uint8_t encoding = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const StoredBlock&) const = default;
};

// Where one saved item's bytes are: a byte range of one data file, with one
// XXH3-64 checksum per `block_size` bytes of the item (the last block may be
// shorter). Checksums always cover the item's bytes as loaded (decoded).
struct StorageLocation {
  std::string file;  // relative to the checkpoint directory, validated on read
  uint64_t byte_offset = 0;
  uint64_t byte_length = 0;  // the item's length as loaded (decoded)
  std::vector<uint64_t> block_checksums;
  // Empty: block k lies raw at byte_offset + k * block_size. Otherwise one
  // entry per block (the native format's encoded items).
  std::vector<StoredBlock> stored_blocks;
  // XXH3-128 (seed 0) of the item's bytes as loaded, {low64, high64}, when
  // the writer recorded it (native format version 2; incremental saves
  // compare against it).
  std::optional<std::array<uint64_t, 2>> content_hash;
  bool operator==(const StorageLocation&) const = default;

  // Bytes the item occupies in its file.
  uint64_t stored_length() const {
    return stored_blocks.empty() ? byte_length : stored_blocks.back().offset + stored_blocks.back().length;
  }
};

// One saved piece of a tensor: the box [offsets, offsets + sizes) of the
// global tensor, stored row-major, little-endian, in the tensor's dtype.
struct ChunkMeta {
  Shape offsets;
  Shape sizes;
  StorageLocation location;
  bool operator==(const ChunkMeta&) const = default;
};

struct TensorMeta {
  DType dtype = DType::kFloat32;
  Shape global_shape;
  std::vector<ChunkMeta> chunks;
  bool operator==(const TensorMeta&) const = default;
};

// Non-tensor values are stored as bytes in a data file; `kind` says how to decode.
enum class ValueKind : uint8_t { kInt64 = 0, kDouble = 1, kBool = 2, kString = 3, kBytes = 4 };
std::string_view value_kind_name(ValueKind kind);

struct ValueMeta {
  ValueKind kind = ValueKind::kBytes;
  StorageLocation location;
  bool operator==(const ValueMeta&) const = default;
};

// One step of the path from the root of the caller's nested state dict to a
// flat key: a dict key, or an index into a list.
struct PathElement {
  bool is_index = false;
  std::string key;
  int64_t index = 0;
  bool operator==(const PathElement&) const = default;
};

struct Metadata {
  std::string format = "dcpp";
  uint32_t format_version = 1;
  std::string dcpp_version;
  int32_t world_size = 1;
  uint64_t block_size = 1 << 20;  // checksum block size in bytes
  std::map<std::string, TensorMeta> tensors;  // by flat (dotted) key
  std::map<std::string, ValueMeta> values;    // by flat key
  // Flat key → path in the original nested state dict (every key of both maps).
  std::map<std::string, std::vector<PathElement>> paths;
  bool operator==(const Metadata&) const = default;

  bool contains(const std::string& key) const { return tensors.count(key) || values.count(key); }
  uint64_t total_bytes() const;  // sum of all stored item lengths
};

}  // namespace dcpp
