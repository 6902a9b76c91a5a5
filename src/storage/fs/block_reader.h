// BlockReader: block-verified reads of single boxes and values from one
// native checkpoint directory, without a load plan (tests and tools use it;
// FileSystemReader reads through the same engine). Also the validation both
// build their read requests with.
//
// Ownership: holds the file system and keeps data files open until
// destroyed. Thread-safety: several threads may read boxes through one
// instance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dcpp/fs_storage.h"
#include "storage/fs/read_engine.h"

namespace dcpp::fs_detail {

// Throws Error(kCorrupt) naming `key` unless the location names a plain
// relative file and has one checksum per block.
void check_location(const std::string& key, const StorageLocation& loc, uint64_t block_size);

// Validates a box read against its chunk (Error(kInvalidArgument) for a box
// outside it or a destination of another shape, kCorrupt for a location that
// does not match the chunk) and builds the engine's request.
BoxRead make_box_read(const std::string& key, size_t chunk_index, const StorageLocation& loc, DType dtype,
                      const Shape& chunk_sizes, const Shape& box_offsets, const Shape& box_lengths,
                      const Tensor& dest, uint64_t block_size);

class BlockReader {
 public:
  // `rank` only names the reading rank in error messages.
  BlockReader(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank = 0);
  ~BlockReader();
  BlockReader(const BlockReader&) = delete;
  BlockReader& operator=(const BlockReader&) = delete;

  // Copies the box [box_offsets, box_offsets + box_lengths) of a saved chunk
  // (of shape `chunk_sizes`, stored in `dtype` at `location`) into `dest`
  // (shape box_lengths, any dtype: converted as copy_from does). Reads only
  // the blocks the box touches, consecutive ones in one pread of at most
  // 16 MiB; never buffers more than that, however large the chunk.
  void read_box(const std::string& key, const StorageLocation& location, DType dtype, const Shape& chunk_sizes,
                const Shape& box_offsets, const Shape& box_lengths, const Tensor& dest);
  // A whole stored item (a value), verified.
  Bytes read_bytes(const std::string& key, const StorageLocation& location);

  uint64_t block_size() const { return block_size_; }
  StorageIoStats stats() const;

 private:
  uint64_t block_size_;
  std::unique_ptr<ReadEngine> engine_;
};

}  // namespace dcpp::fs_detail
