// Inspecting and verifying checkpoints of any supported format, as the
// `dcpp inspect` and `dcpp verify` commands and the Python package do.
//
// inspect_checkpoint() summarises a checkpoint (format, keys with dtype and
// shape, files, sizes); verify_checkpoint() checks every checksum and
// structural invariant and reports every problem with its file and byte
// offset, not only the first. Both detect the format: detect_checkpoint()
// asks each registered FormatInspector, in order, whether a path is one of
// its checkpoints, the native format first, then the foreign ones
// (safetensors in either Hugging Face layout, PyTorch DCP), which share one
// implementation built on the storage layer's readers. A new format adds one
// FormatInspector subclass and one line in format_inspectors().
// Thread-safety: the functions keep no state; inspectors are immutable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/dtype.h"
#include "dcpp/metadata.h"

namespace dcpp {

class FormatInspector;

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

class FormatInspector {
 public:
  virtual ~FormatInspector() = default;
  // Short name printed in summaries and JSON ("dcpp").
  virtual std::string name() const = 0;
  // Whether the format stores checksums of its data (verify then checks
  // every byte's value, not only structure and readability).
  virtual bool checksummed() const = 0;
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

const std::vector<std::unique_ptr<FormatInspector>>& format_inspectors();

struct Detection {
  enum Kind { kMissing, kNotCheckpoint, kFound } kind = kMissing;
  std::string path;  // the checkpoint directory (a path to its metadata file is mapped to its directory)
  const FormatInspector* format = nullptr;
  bool complete = false;
  std::string message;  // why it is not a checkpoint, or why it is incomplete
};

Detection detect_checkpoint(const std::string& path);

std::unique_ptr<FormatInspector> make_native_inspector();
// Safetensors (both Hugging Face layouts, or one .safetensors file) and
// PyTorch DCP: one implementation, one instance per format.
std::unique_ptr<FormatInspector> make_safetensors_inspector();
std::unique_ptr<FormatInspector> make_torch_dcp_inspector();

// One problem verify found: the file involved (empty when none), the byte
// offset in it (-1 when none), and what is wrong.
struct VerifyProblem {
  std::string file;
  int64_t offset = -1;
  std::string message;
};

struct VerifyReport {
  std::string path;    // the checkpoint directory (or .safetensors file) verified
  std::string format;  // FormatInspector::name()
  bool complete = false;
  bool checksummed = false;  // the format has block checksums (only then is every byte's value verified)
  VerifyTotals totals;
  std::vector<VerifyProblem> problems;
  std::vector<std::string> io_errors;  // reads the operating system refused: verification is partial
  bool ok() const { return complete && problems.empty() && io_errors.empty(); }
};

// Detects the format of `path` and summarises it; Error(kNotFound) when
// nothing is there and Error(kInvalidArgument) when it is not a checkpoint
// (both with detect_checkpoint's explanation).
CheckpointSummary inspect_checkpoint(const std::string& path);
// Detects the format of `path` and verifies all of it, collecting every
// problem; `progress`, when given, also sees each problem and the progress as
// they come. Errors as inspect_checkpoint.
VerifyReport verify_checkpoint(const std::string& path, VerifyReporter* progress = nullptr);
// The same for a checkpoint already detected (kind kFound).
VerifyReport verify_checkpoint(const Detection& detection, VerifyReporter* progress = nullptr);

}  // namespace dcpp
