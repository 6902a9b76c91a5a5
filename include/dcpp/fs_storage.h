// The native dcpp checkpoint format: FileSystemWriter / FileSystemReader.
//
// A checkpoint is one directory: one data file per writing rank
// ("data-00003.bin"), items at 4096-byte-aligned offsets, raw little-endian
// row-major bytes with an XXH3-64 checksum per fixed block, and a binary
// metadata file ("dcpp.metadata") written last, atomically; its presence
// means the checkpoint is complete. A save writes into a staging directory
// beside the target and swaps it in at commit, so the target path always
// holds the old complete checkpoint or the new one; on a store without
// rename (FileSystem::atomic_rename() false: S3) data objects are named per
// save and the metadata object written last is the commit. docs/format.md
// describes every byte and both commit protocols.
//
// Ownership: writers and readers hold a shared_ptr to their FileSystem (the
// injected seam, PosixFileSystem by default). Thread-safety: one writer or
// reader object serves one rank of one save or load and is not thread-safe
// (separate objects for separate thread-ranks are fine).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/storage.h"
#include "dcpp/tensor.h"

namespace dcpp {

inline constexpr uint32_t kFsFormatVersion = 2;   // the newest version this dcpp reads (and writes when blocks are encoded)
inline constexpr std::string_view kFsFormatName = "dcpp";
inline constexpr std::string_view kMetadataFileName = "dcpp.metadata";
inline constexpr uint64_t kDefaultBlockSize = 1 << 20;

// "data-00003.bin": the data file written by `rank`.
std::string data_file_name(int rank);
// "<parent>/.<name>.dcpp-staging": where a save into `path` is staged.
std::string staging_path(const std::string& path);

// ---- metadata encoding (docs/format.md, "Metadata file") ----

// Binary encoding, version kFsFormatVersion, with its trailing self-checksum.
// Throws Error(kInvalidArgument) for metadata that cannot be encoded
// (a block checksum count that does not match the byte length, a bad file name).
std::vector<std::byte> encode_metadata(const Metadata& metadata);
// Decodes and validates. `source` names the file in error messages.
// Error(kCorrupt) for any structural problem (with the byte offset), a
// checksum mismatch, or a file name that is absolute or climbs out;
// Error(kUnsupported) for a format version newer than kFsFormatVersion.
Metadata decode_metadata(const void* data, size_t size, const std::string& source);
// A human-readable JSON rendering (for `dcpp inspect --json`): checksums as
// 16-digit hex strings, paths as arrays of strings and integers.
std::string metadata_to_json(const Metadata& metadata, bool pretty = true);
// Throws Error(kCorrupt) naming `key` and `file` unless `file` is a plain
// relative path: not empty, not absolute, no empty, "." or ".." component, no NUL.
void validate_relative_file_name(const std::string& key, const std::string& file);
// Format version 2 also allows a reference into a sibling checkpoint of the
// same parent directory (incremental saves): "../<checkpoint>/<file>", where
// <checkpoint> is one component not starting with '.', and <file> passes
// validate_relative_file_name. Error(kCorrupt) otherwise.
void validate_data_file_name(const std::string& key, const std::string& file);
// "../step-000100/data-00000.bin" → "step-000100"; nullopt for a file of the
// checkpoint's own directory.
std::optional<std::string> referenced_checkpoint(const std::string& file);

// ---- checkpoint directory state ----

enum class CheckpointState {
  kMissing,     // nothing at the path
  kEmpty,       // an empty directory
  kComplete,    // a directory holding dcpp.metadata
  kIncomplete,  // a directory holding only what an unfinished dcpp save leaves
  kForeign,     // anything else: never written to or removed by dcpp
};
CheckpointState checkpoint_state(FileSystem& fs, const std::string& path);
// Where a save on a file system without RENAME_EXCHANGE moves the previous
// checkpoint while it renames the new one in: "<parent>/.<name>.dcpp-old".
// A crash between those two renames leaves nothing at the path and the old
// checkpoint, complete, there.
std::string set_aside_path(const std::string& path);
// The directory a load of `path` reads: `path` itself, or — when nothing is at
// `path` and a complete checkpoint sits at set_aside_path(path) — that one.
std::string resolve_checkpoint_dir(FileSystem& fs, const std::string& path);
// Moves a complete set-aside checkpoint back to `path` when nothing is there
// (the next save calls it before writing); returns true if it did.
bool restore_set_aside_checkpoint(FileSystem& fs, const std::string& path);

// ---- writer ----

// What one rank's writer or reader did on the data files (for benchmarks and
// tests; metadata I/O is not counted).
struct StorageIoStats {
  uint64_t bytes_written = 0;   // pwrite bytes, alignment padding included
  uint64_t bytes_read = 0;      // pread bytes this rank fetched from disk
  uint64_t bytes_needed = 0;    // bytes of saved chunks this rank's plan asked for
  uint64_t bytes_received = 0;  // block bytes other ranks read and delivered to this one
  uint64_t bytes_sent = 0;      // block bytes this rank read and delivered to others
  uint64_t io_calls = 0;        // pwrite or pread calls on data files
  // Read-once delivery: the pieces this rank packed for others (one per
  // piece and receiving box), the non-empty messages it sent to other ranks
  // (all of a round's pieces for one rank travel as one), and the exchange
  // rounds it took part in.
  uint64_t pieces_sent = 0;
  uint64_t messages_sent = 0;
  uint64_t exchange_rounds = 0;
  bool direct = false;          // some data file was opened with O_DIRECT
  bool buffered_fallback = false;  // direct I/O was asked for and the file system refused it
};

struct FileSystemWriterOptions {
  FileSystemPtr filesystem = nullptr;  // null = default_file_system()
  // Replace a complete checkpoint already at the path (atomically, at commit).
  // false: prepare() refuses with Error(kInvalidArgument) before writing anything.
  bool overwrite = true;
  uint64_t block_size = kDefaultBlockSize;  // checksum block size, recorded in the metadata
  // Open data files with O_DIRECT when the file system allows it (falls back
  // to buffered I/O otherwise, e.g. on tmpfs; stats().buffered_fallback says
  // so). Data that is not 4096-aligned in memory goes through a staging buffer.
  bool direct_io = true;
  size_t staging_buffer_bytes = 8 << 20;  // per writer thread (rounded to 4096)
  // Threads writing this rank's data file in parallel (positional writes of
  // disjoint ranges; 1 = on the calling thread).
  size_t io_threads = 2;
  // Items are cut into units of about this many bytes (whole checksum
  // blocks) that the writer threads take in file order.
  uint64_t write_unit_bytes = 16 << 20;
  // Lossless compression (docs/format.md, "Encoded blocks"): every checksum
  // block is byte-grouped by dtype and entropy-coded with zstd on the writer
  // threads, and stored encoded when that is smaller, raw otherwise. The
  // checkpoint is then format version 2 (dcpp before version 2 cannot read
  // it). Off by default. Needs a block_size that is a multiple of 4096 (the
  // constructor says so otherwise).
  bool compress = false;
  // zstd level for each byte group; levels below 1 are zstd's fast levels,
  // with literals still Huffman-coded (entropy coding at little search cost).
  int compress_level = -1000;
  // Record each tensor chunk's XXH3-128 in the metadata (format version 2),
  // what a later incremental save compares against.
  bool content_hashes = false;
  // Incremental save: an earlier checkpoint in the same parent directory
  // (its metadata, and its directory name). A tensor chunk whose key,
  // offsets, sizes and dtype match a chunk of it that has a content hash,
  // and whose bytes hash the same, is not written: the new metadata refers
  // to the bytes where the earlier checkpoint keeps them
  // ("../<base_name>/data-00000.bin", or the checkpoint that one refers to).
  // Implies content_hashes. A checkpoint that refers to another needs it to
  // stay (CheckpointManager's retention keeps it).
  std::shared_ptr<const Metadata> base = nullptr;
  std::string base_name = {};
};

class FileSystemWriter final : public StorageWriter {
 public:
  explicit FileSystemWriter(std::string path, FileSystemWriterOptions options = {});
  ~FileSystemWriter() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  void prepare() override;
  std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) override;
  void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) override;
  void abort() noexcept override;

  const std::string& path() const { return path_; }
  const std::string& staging_dir() const { return staging_; }
  // This rank's data-file I/O in the last write_data.
  const StorageIoStats& stats() const { return stats_; }

 private:
  void check_target_replaceable(CheckpointState state) const;
  void write_metadata_file(const Metadata& metadata);
  void commit();

  std::string path_;
  std::string staging_;
  FileSystemWriterOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  int world_size_ = 1;
  bool is_coordinator_ = true;
  bool wrote_data_file_ = false;
  bool prepared_ = false;
  // The store has no atomic rename: per-save object names, the metadata
  // object as the commit (src/storage/fs/object_commit.h).
  bool object_commit_ = false;
  bool exclusive_commit_ = false;
  std::string data_file_;  // this rank's data file name in this save
  StorageIoStats stats_;
};

// ---- reader ----

namespace fs_detail {
class ReadEngine;
}

struct FileSystemReaderOptions {
  FileSystemPtr filesystem = nullptr;  // null = default_file_system()
  // Threads reading in parallel (1 = on the calling thread).
  size_t io_threads = 4;
  // Read with O_DIRECT where the file system allows it (cold, no page-cache
  // copy); falls back to buffered reads otherwise (stats().buffered_fallback).
  bool direct_io = true;
  // Largest single read; adjacent and nearby needed blocks coalesce up to it.
  uint64_t max_read_bytes = 16 << 20;
  // Read once, deliver everywhere: with the communicator of the load (every
  // rank passing it, in the same rank order as the load), each saved block
  // that several ranks need is read from disk by one of them and sent to
  // the others, so disk traffic stays at the bytes needed whatever the
  // resharding. read_data becomes collective over it. Null: the one load()
  // hands over (set_communicator), if any; else each rank reads what it needs.
  CommPtr comm = nullptr;
  // Bytes each rank reads per delivery round (bounds the memory held for
  // other ranks: the reads of two rounds are queued at a time, and the
  // round before them is being exchanged), and the piece size shared blocks
  // are dealt out in.
  uint64_t round_bytes = 32 << 20;
  uint64_t share_piece_bytes = 4 << 20;
  // false: never share, even with a communicator (each rank reads its own blocks).
  bool read_once = true;
};

class FileSystemReader final : public StorageReader {
 public:
  explicit FileSystemReader(std::string path, FileSystemReaderOptions options = {});
  ~FileSystemReader() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  // load() passes its communicator: read-once delivery is then on unless
  // options.comm chose one already.
  void set_communicator(CommPtr comm) override { load_comm_ = std::move(comm); }
  Metadata read_metadata() override;
  void read_data(const LoadPlan& plan, LoadPlanner& planner) override;

  const std::string& path() const { return path_; }
  // This rank's data-file I/O in the last read_data.
  const StorageIoStats& stats() const { return stats_; }

 private:
  std::string path_;
  std::string dir_;  // the directory read: path_, or its set-aside checkpoint (resolve_checkpoint_dir)
  FileSystemReaderOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  int world_size_ = 1;
  std::optional<Metadata> metadata_;
  std::unique_ptr<fs_detail::ReadEngine> engine_;
  StorageIoStats stats_;
  CommPtr load_comm_;
};

// Reads and decodes `<path>/dcpp.metadata` (Error(kNotFound) when the
// directory or the file is missing, saying which).
Metadata read_fs_metadata(FileSystem& fs, const std::string& path);

}  // namespace dcpp
