// Private to the torch_dcp storage: the subset of the ZIP format that
// torch.save produces (stored entries, no compression, optional ZIP64), read
// from a byte range of a larger file, and written into a memory buffer.
//
// ZipReader never trusts the archive: every offset and length it reads is
// checked against the archive's byte range before use, entry and name counts
// are capped, and nothing is allocated from a size field before that size is
// known to lie inside the archive. Errors are Error(kCorrupt) naming the
// source and the offending offset; compressed entries are
// Error(kUnsupported). Not thread-safe (it holds the file handle's reads).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dcpp/io.h"

namespace dcpp::torch_dcp {

// CRC-32 (ISO-HDLC, the ZIP polynomial 0xEDB88320), continuable: pass the
// previous result as `crc` to extend it.
uint32_t crc32(const void* data, size_t length, uint32_t crc = 0);

struct ZipEntry {
  std::string name;
  uint64_t local_header_offset = 0;  // relative to the archive start
  uint64_t data_offset = 0;          // relative to the archive start (after the local header)
  uint64_t size = 0;                 // stored == uncompressed
  uint32_t crc = 0;
};

class ZipReader {
 public:
  // The archive occupies [base, base + length) of `file`; `source` names it
  // in error messages ("__0_0.distcp at byte offset 123").
  ZipReader(RandomAccessFile& file, uint64_t base, uint64_t length, std::string source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry whose name ends with "/" + suffix (torch.save prefixes every
  // name with an archive folder) or equals it; nullptr if absent.
  const ZipEntry* find(const std::string& suffix) const;
  // The archive folder prefix ("archive/") shared by all entries.
  const std::string& prefix() const { return prefix_; }
  // Reads [offset, offset + length) of an entry's data; Error(kCorrupt) when out of range.
  void read(const ZipEntry& entry, uint64_t offset, void* out, uint64_t length) const;
  // A whole entry (capped at `max_size` bytes, Error(kCorrupt) beyond) with its CRC verified.
  std::vector<std::byte> read_all(const ZipEntry& entry, uint64_t max_size) const;

 private:
  void read_raw(uint64_t offset, void* out, uint64_t length, const char* what) const;
  void parse();

  RandomAccessFile& file_;
  uint64_t base_;
  uint64_t length_;
  std::string source_;
  std::string prefix_;
  std::vector<ZipEntry> entries_;
};

// Writes a torch.save-style archive through a sink (so tensor bytes go
// from the caller's memory to the file without a copy): stored entries whose
// data start at 64-byte aligned offsets (padding in the local header's extra
// field, as PyTorch's stream writer does), the CRC-32 of each, ZIP64 records
// when an offset or size needs them.
class ZipWriter {
 public:
  using Sink = std::function<void(const void* data, size_t length)>;
  explicit ZipWriter(Sink sink) : sink_(std::move(sink)) {}
  void add(const std::string& name, const void* data, size_t length);
  // Central directory and end records; the archive is complete after this.
  void finish();
  // Bytes written so far.
  uint64_t size() const { return pos_; }

 private:
  struct Written {
    std::string name;
    uint64_t header_offset;
    uint64_t size;
    uint32_t crc;
  };
  void emit(const void* data, size_t length);
  Sink sink_;
  uint64_t pos_ = 0;
  std::vector<Written> written_;
};

}  // namespace dcpp::torch_dcp
