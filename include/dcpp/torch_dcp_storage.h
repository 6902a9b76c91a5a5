// PyTorch DCP's own on-disk layout as a dcpp storage format: read and write
// checkpoints that torch.distributed.checkpoint.save / load (with the
// default FileSystemWriter / FileSystemReader) produce and accept, with no
// Python involved.
//
// Layout: a directory with `.metadata` (a pickle of
// torch.distributed.checkpoint.metadata.Metadata: per key a
// TensorStorageMetadata or BytesStorageMetadata, planner_data = the flatten
// mapping, storage_data = {MetadataIndex: _StorageInfo(relative_path,
// offset, length)}) and `__<rank>_<k>.distcp` files in which each item is
// one torch.save archive (a stored ZIP: data.pkl + data/0) at the recorded
// offset. Tensor items are read straight from the archive's storage bytes,
// honouring the pickled storage offset and strides; bytes items (non-tensor
// values) are pickled Python objects: int, float, bool, str and bytes map to
// dcpp values, anything else is kept as the item's raw torch.save archive
// (ValueKind::kBytes).
//
// The reader never executes a pickle: a restricted interpreter accepts only
// the classes DCP writes (under the module paths PyTorch 2.4 onwards used)
// and reports any other as Error(kUnsupported) naming it. Every offset,
// length and size in `.metadata` and in each archive is checked against the
// file before use (Error(kCorrupt) naming the file and offset); nothing is
// allocated from an unchecked size. The writer emits pickles with the class
// names PyTorch expects and archives with correct CRC-32s; like the native
// format it stages the save beside the target and swaps it in at commit.
//
// Ownership: each object holds a shared_ptr to its FileSystem.
// Thread-safety: one object serves one rank of one save or load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/storage.h"

namespace dcpp {

inline constexpr std::string_view kTorchDcpMetadataName = ".metadata";

struct TorchDcpWriterOptions {
  FileSystemPtr filesystem;  // null = default_file_system()
  // Replace an existing DCP checkpoint at the path (atomically, at commit).
  bool overwrite = true;
};

class TorchDcpWriter final : public StorageWriter {
 public:
  explicit TorchDcpWriter(std::string path, TorchDcpWriterOptions options = {});
  ~TorchDcpWriter() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  void prepare() override;
  std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) override;
  void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) override;
  void abort() noexcept override;

 private:
  std::string path_;
  TorchDcpWriterOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  bool is_coordinator_ = true;
};

struct TorchDcpReaderOptions {
  FileSystemPtr filesystem;  // null = default_file_system()
  // Caps on what the reader will believe: the `.metadata` file size and
  // each non-tensor item (larger is Error(kCorrupt)).
  uint64_t max_metadata_bytes = 1ull << 30;
  uint64_t max_value_bytes = 64ull << 20;
};

class TorchDcpReader final : public StorageReader {
 public:
  explicit TorchDcpReader(std::string path, TorchDcpReaderOptions options = {});
  ~TorchDcpReader() override;

  void set_up(int rank, int world_size, bool is_coordinator) override;
  Metadata read_metadata() override;
  void read_data(const LoadPlan& plan, LoadPlanner& planner) override;

 private:
  struct Impl;
  std::string path_;
  TorchDcpReaderOptions options_;
  FileSystemPtr fs_;
  int rank_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dcpp
