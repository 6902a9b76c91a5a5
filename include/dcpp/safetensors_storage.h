// Hugging Face safetensors as a dcpp storage format, and conversions
// between checkpoint formats.
//
// SafetensorsWriter / SafetensorsReader plug into save()/load() under the
// same planners as the native format, in the two layouts PyTorch's
// HuggingFaceStorageWriter produces:
//  - full: whole tensors in "model-0000i-of-0000N.safetensors" plus
//    "model.safetensors.index.json" (metadata.total_size, weight_map), which
//    Hugging Face tools load. With several ranks each rank writes its chunks
//    to a "sharded/" folder of the staging directory and the coordinator
//    consolidates them at finish (streaming, one tensor in memory).
//  - sharded: every rank writes its own chunks to
//    "shard-0000s-model-0000i-of-0000N.safetensors" (s = rank + 1, as PyTorch numbers them), at most one chunk of a
//    key per file, the chunk's global offsets in the header's __metadata__
//    as PyTorch writes them (DCP_SHARDING_INFO = {fqn: {"saved_offsets": [..]}},
//    DCP_VERSION, format = "pt"); no index file. Global shapes are the
//    maximum of offset + size over the chunks. A zero-size tensor has no
//    chunk with bytes: the coordinator writes it whole (offset 0).
// Non-tensor values, which safetensors cannot hold, travel as JSON in the
// __metadata__ entry "dcpp_values" of the file that holds them (ignored by
// other tools). A save is staged beside the target and swapped in at commit,
// like the native format's. The reader accepts both layouts (and any
// directory of .safetensors files), every safetensors dtype that dcpp has
// (BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2; the
// others are Error(kUnsupported) naming the key), and validates every header
// (size caps, offsets inside the file, no overlaps, dtype × shape overflow).
//
// Ownership: writers and readers hold a shared_ptr to their FileSystem.
// Thread-safety: one object serves one rank of one save or load; the free
// functions may run concurrently on different paths.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/storage.h"

namespace dcpp {

inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";
// Hugging Face's cap on a header (safetensors' MAX_HEADER_SIZE).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

enum class SafetensorsLayout { kFull, kSharded };

// "F32", "BF16", "F8_E4M3", ... for a dcpp dtype.
std::string_view safetensors_dtype_name(DType dtype);
// Inverse; Error(kUnsupported) naming `key` for a safetensors dtype dcpp
// lacks (U16, U32, U64, F8_E8M0, F4, F6_*, C64), Error(kCorrupt) for an unknown name.
DType dtype_from_safetensors(std::string_view name, const std::string& key);
// The dtypes PyTorch's HF storage reader maps (F16/F32/F64/BF16/I8/U8/I16/I32/I64).
bool torch_hf_supports(DType dtype);

// One parsed, validated safetensors header.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  uint64_t begin = 0;  // data_offsets, relative to the data section
  uint64_t end = 0;
};
struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length
  std::vector<SafetensorsEntry> tensors;  // in header order
  std::map<std::string, std::string> metadata;  // __metadata__ (string values only)
};
// Parses the header of a file of `file_size` bytes whose first 8 bytes held
// `header_len` and whose next header_len bytes are `json`. Error(kCorrupt)
// naming `source` for: a header over kMaxSafetensorsHeader or the file, bad
// JSON, a duplicate key, a bad dtype/shape/offsets field, size ≠ numel ×
// dtype size (overflow checked), data past the end of the file, overlapping
// tensors.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t file_size, const std::string& source);
// Reads and parses the header of one file.
SafetensorsHeader read_safetensors_header(FileSystem& fs, const std::string& path);

struct SafetensorsWriterOptions {
  FileSystemPtr filesystem;  // null = default_file_system()
  SafetensorsLayout layout = SafetensorsLayout::kFull;
  // Full layout: start a new model-*.safetensors file once one holds this
  // many tensor bytes (a single larger tensor gets a file of its own); 0 = one file.
  uint64_t max_shard_size = 0;
  // Refuse dtypes PyTorch's HF storage reader cannot represent (BOOL, FP8),
  // with Error(kUnsupported) naming the key, before anything is written.
  bool torch_compatible = false;
  // Replace an existing safetensors checkpoint at the path (atomically, at commit).
  bool overwrite = true;
};

class SafetensorsWriter final : public StorageWriter {
 public:
  explicit SafetensorsWriter(std::string path, SafetensorsWriterOptions options = {});
  ~SafetensorsWriter() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  void prepare() override;
  std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) override;
  void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) override;
  void abort() noexcept override;

 private:
  std::vector<WriteItem> items_to_write(const SavePlan& plan) const;

  std::string path_;
  SafetensorsWriterOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  int world_size_ = 1;
  bool is_coordinator_ = true;
};

struct SafetensorsReaderOptions {
  FileSystemPtr filesystem;  // null = default_file_system()
};

class SafetensorsReader final : public StorageReader {
 public:
  // `path`: a directory of .safetensors files, or one .safetensors file.
  explicit SafetensorsReader(std::string path, SafetensorsReaderOptions options = {});
  ~SafetensorsReader() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  Metadata read_metadata() override;
  void read_data(const LoadPlan& plan, LoadPlanner& planner) override;

 private:
  struct Impl;
  std::string path_;
  SafetensorsReaderOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  std::unique_ptr<Impl> impl_;
};

// ---- formats and conversions ----

enum class CheckpointFormat { kNative, kSafetensors, kTorchDcp, kUnknown };
std::string_view checkpoint_format_name(CheckpointFormat format);
// By the files present: dcpp.metadata → native; .metadata → PyTorch DCP;
// *.safetensors (or a .safetensors file) → safetensors.
CheckpointFormat detect_checkpoint_format(const std::string& path, FileSystem* fs = nullptr);
// A reader of the detected format; Error(kNotFound) when none is recognised.
std::unique_ptr<StorageReader> open_storage_reader(const std::string& path, FileSystemPtr fs = nullptr);

struct ConsolidateOptions {
  FileSystemPtr filesystem;     // null = default_file_system()
  uint64_t max_shard_size = 0;  // bytes per output file; 0 = one file
  bool torch_compatible = false;
  bool overwrite = true;
};

// Turns the checkpoint at `src_path` (native, safetensors of either layout,
// or PyTorch DCP) into full tensors in the Hugging Face layout at
// `dst_path`, streaming: at most one output tensor is in memory at a time.
// Values go into the first file's "dcpp_values". Staged and committed atomically.
void consolidate_to_safetensors(const std::string& src_path, const std::string& dst_path,
                                const ConsolidateOptions& options = {});

// Converts any supported checkpoint at `src_path` into the native format
// at `dst_path` (one chunk per tensor; one tensor in memory at a time).
void convert_to_dcpp(const std::string& src_path, const std::string& dst_path, FileSystemPtr fs = nullptr);
// The same with the native writer's options (e.g. `compress`; its
// filesystem, when set, is also the one the source is read through).
void convert_to_dcpp(const std::string& src_path, const std::string& dst_path, const FileSystemWriterOptions& options);

// Converts any supported checkpoint at `src_path` into PyTorch DCP's layout
// at `dst_path` (one chunk per tensor, one `.distcp` file; one tensor in
// memory at a time), loadable by torch.distributed.checkpoint.load.
void convert_to_torch_dcp(const std::string& src_path, const std::string& dst_path, FileSystemPtr fs = nullptr);

}  // namespace dcpp
