#include "storage/fs/block_reader.h"

#include "dcpp/error.h"
#include "storage/fs/fs_common.h"

namespace dcpp::fs_detail {
namespace {

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

void check_location(const std::string& key, const StorageLocation& loc, uint64_t block_size) {
  if (loc.byte_length > 0) validate_data_file_name(key, loc.file);
  if (loc.block_checksums.size() != block_count(loc.byte_length, block_size)) {
    throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + " has " + std::to_string(loc.block_checksums.size()) +
                                         " block checksums for " + std::to_string(loc.byte_length) +
                                         " bytes in blocks of " + std::to_string(block_size));
  }
}

BoxRead make_box_read(const std::string& key, size_t chunk_index, const StorageLocation& loc, DType dtype,
                      const Shape& chunk_sizes, const Shape& box_offsets, const Shape& box_lengths,
                      const Tensor& dest, uint64_t block_size) {
  const size_t ndim = chunk_sizes.size();
  if (box_offsets.size() != ndim || box_lengths.size() != ndim) {
    throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": box " + shape_to_string(box_offsets) +
                                                 " + " + shape_to_string(box_lengths) +
                                                 " does not match the chunk's rank " + std::to_string(ndim));
  }
  for (size_t d = 0; d < ndim; ++d) {
    if (box_offsets[d] < 0 || box_lengths[d] < 0 || box_offsets[d] > chunk_sizes[d] ||
        box_lengths[d] > chunk_sizes[d] - box_offsets[d]) {
      throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": box at " + shape_to_string(box_offsets) +
                                                   " of size " + shape_to_string(box_lengths) +
                                                   " lies outside the saved chunk of size " +
                                                   shape_to_string(chunk_sizes));
    }
  }
  if (dest.sizes() != box_lengths) {
    throw Error(ErrorCode::kInvalidArgument, "read of " + quoted(key) + ": destination shape " +
                                                 shape_to_string(dest.sizes()) + " differs from the box size " +
                                                 shape_to_string(box_lengths));
  }
  const uint64_t elem = dtype_size(dtype);
  uint64_t chunk_numel = 1;
  for (int64_t s : chunk_sizes) {
    if (s < 0 || __builtin_mul_overflow(chunk_numel, static_cast<uint64_t>(s), &chunk_numel)) {
      throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + ": chunk element count overflows");
    }
  }
  if (loc.byte_length != chunk_numel * elem) {
    throw Error(ErrorCode::kCorrupt, "key " + quoted(key) + ": chunk of size " + shape_to_string(chunk_sizes) +
                                         " should hold " + std::to_string(chunk_numel * elem) + " bytes, its location " +
                                         "says " + std::to_string(loc.byte_length));
  }
  check_location(key, loc, block_size);
  BoxRead r;
  r.key = key;
  r.chunk_index = chunk_index;
  r.location = &loc;
  r.dtype = dtype;
  r.chunk_sizes = chunk_sizes;
  r.box_offsets = box_offsets;
  r.box_lengths = box_lengths;
  r.dest = dest;
  return r;
}

BlockReader::BlockReader(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank)
    : block_size_(block_size) {
  if (block_size_ == 0) throw Error(ErrorCode::kInvalidArgument, "BlockReader: block size 0");
  engine_ = std::make_unique<ReadEngine>(std::move(fs), std::move(directory), block_size, rank);
}

BlockReader::~BlockReader() = default;

void BlockReader::read_box(const std::string& key, const StorageLocation& loc, DType dtype, const Shape& chunk_sizes,
                           const Shape& box_offsets, const Shape& box_lengths, const Tensor& dest) {
  std::vector<BoxRead> reads;
  reads.push_back(make_box_read(key, 0, loc, dtype, chunk_sizes, box_offsets, box_lengths, dest, block_size_));
  ReadEngineOptions options;
  options.threads = 1;
  engine_->read(reads, options);
}

Bytes BlockReader::read_bytes(const std::string& key, const StorageLocation& loc) {
  check_location(key, loc, block_size_);
  return engine_->read_bytes(key, loc);
}

StorageIoStats BlockReader::stats() const { return engine_->stats(); }

}  // namespace dcpp::fs_detail
