// Private to the dcpp command: checkpoint formats as the tools see them.
//
// detect_checkpoint() asks each registered format, in order, whether a path
// is one of its checkpoints; the first that claims it answers inspect and
// verify. The native format is probed first, then the foreign ones
// (safetensors in either Hugging Face layout, PyTorch DCP), which share one
// implementation built on the storage layer's readers (foreign_format.cc).
// A new format adds one CheckpointFormat subclass and one line in
// checkpoint_formats(): the table, JSON and problem reporting are shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/dtype.h"
#include "dcpp/metadata.h"

namespace dcpp::cli {

class CheckpointFormat;

// One key as `dcpp inspect` lists it.
struct KeySummary {
  std::string key;
  bool is_tensor = true;
  std::string type;  // dtype name for tensors, value kind for values
  Shape shape;       // tensors only
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  std::vector<std::string> files;  // the distinct files holding its bytes
};

struct FileSummary {
  std::string name;  // relative to the checkpoint
  uint64_t bytes = 0;
};

struct CheckpointSummary {
  std::string path;
  std::string format;          // "dcpp", "safetensors", "torch-dcp"
  std::string layout;          // how the format lays it out, when it has variants ("full", "sharded")
  uint32_t format_version = 0;
  std::string writer_version;  // the library version that wrote it, if recorded
  bool complete = true;
  std::string incomplete_reason;
  int64_t world_size = 0;  // 0: unknown
  uint64_t block_size = 0;  // 0: the format has no block checksums
  uint64_t data_bytes = 0;   // bytes of all stored items
  uint64_t total_bytes = 0;  // bytes of every file of the checkpoint (metadata included)
  std::vector<FileSummary> files;
  std::vector<KeySummary> keys;  // tensors first, then values, each sorted
};

// What verify reports, and how it learns about progress.
class VerifyReporter {
 public:
  virtual ~VerifyReporter() = default;
  // A problem with the checkpoint; `file` is the path of the file involved
  // (empty when none), `offset` the byte offset in it (-1 when none).
  virtual void problem(const std::string& file, int64_t offset, const std::string& message) = 0;
  // The operating system refused a read: verification could not finish.
  virtual void io_error(const std::string& message) = 0;
  virtual void begin_data(uint64_t total_bytes) = 0;
  virtual void data_verified(uint64_t bytes) = 0;
};

struct VerifyTotals {
  uint64_t tensors = 0;
  uint64_t values = 0;
  uint64_t chunks = 0;
  uint64_t files = 0;
  uint64_t bytes_verified = 0;
};

enum class ProbeResult { kNo, kComplete, kIncomplete };

class CheckpointFormat {
 public:
  virtual ~CheckpointFormat() = default;
  // Short name printed in summaries and JSON ("dcpp").
  virtual std::string name() const = 0;
  // Whether `path` (which exists) is a checkpoint of this format; `why` says,
  // for kIncomplete, what is missing.
  virtual ProbeResult probe(const std::string& path, std::string& why) const = 0;
  // Throws dcpp::Error (kCorrupt for damaged metadata, kIo for a refused read).
  virtual CheckpointSummary summarize(const std::string& path, bool complete) const = 0;
  // The format's complete metadata as JSON, if it has a JSON rendering.
  virtual std::optional<std::string> metadata_json(const std::string& path) const = 0;
  // Checks everything, reporting each problem; keeps going after problems.
  virtual VerifyTotals verify(const std::string& path, bool complete, VerifyReporter& reporter) const = 0;
};

const std::vector<std::unique_ptr<CheckpointFormat>>& checkpoint_formats();

struct Detection {
  enum Kind { kMissing, kNotCheckpoint, kFound } kind = kMissing;
  std::string path;  // the checkpoint directory (a path to its metadata file is mapped to its directory)
  const CheckpointFormat* format = nullptr;
  bool complete = false;
  std::string message;  // why it is not a checkpoint, or why it is incomplete
};

Detection detect_checkpoint(const std::string& path);

std::unique_ptr<CheckpointFormat> make_native_format();
// Safetensors (both Hugging Face layouts, or one .safetensors file) and
// PyTorch DCP: one implementation, one instance per format.
std::unique_ptr<CheckpointFormat> make_safetensors_format();
std::unique_ptr<CheckpointFormat> make_torch_dcp_format();

// Reports overlapping chunks and chunks that leave part of the tensor
// uncovered (`boxes`: the key's non-empty chunks that lie inside `shape`);
// problems are attributed to `meta_path`.
void check_chunk_tiling(const std::string& key, const Shape& shape, std::vector<const ChunkMeta*> boxes,
                        const std::string& meta_path, VerifyReporter& reporter);

}  // namespace dcpp::cli
