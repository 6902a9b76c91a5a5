// An in-memory StorageWriter/StorageReader test double: the storage protocol
// of dcpp/storage.h without a file system, shared by the thread ranks of one
// process through a MemoryStore. It can be told to fail (a dcpp::Error or a
// foreign exception) in write_data / read_data on one rank, and counts its
// aborts, so the collective error paths of save()/load() can be tested apart
// from the native format.
#pragma once

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "dcpp/error.h"
#include "dcpp/storage.h"

namespace dcpp::testing {

struct MemoryStore {
  std::mutex mu;
  std::map<std::string, Bytes> files;  // committed checkpoint
  std::optional<Metadata> metadata;
  std::map<std::string, Bytes> staging;  // the save in progress
  std::atomic<int> aborts{0};
  std::atomic<int> commits{0};
  std::atomic<uint64_t> bytes_read{0};
};

enum class FailMode { kNone, kDcppError, kForeignException };

class MemoryWriter final : public StorageWriter {
 public:
  explicit MemoryWriter(std::shared_ptr<MemoryStore> store, FailMode fail_write = FailMode::kNone)
      : store_(std::move(store)), fail_write_(fail_write) {}

  void set_up(int rank, int world_size, bool is_coordinator) override { rank_ = rank; }
  void prepare() override {
    std::lock_guard lock(store_->mu);
    store_->staging.clear();
  }
  std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) override {
    std::vector<WriteResult> results;
    const std::string file = "rank-" + std::to_string(rank_);
    Bytes data;
    for (const WriteItem& item : plan.items) {
      if (fail_write_ == FailMode::kDcppError && !results.empty()) {
        throw Error(ErrorCode::kIo, "memory writer of rank " + std::to_string(rank_) + " failed writing '" +
                                        item.fqn + "' (injected)");
      }
      if (fail_write_ == FailMode::kForeignException && !results.empty()) {
        throw std::runtime_error("injected foreign failure while writing '" + item.fqn + "'");
      }
      WriteResult r;
      r.fqn = item.fqn;
      r.type = item.type;
      r.location.file = file;
      r.location.byte_offset = data.size();
      if (item.type == WriteItemType::kTensor) {
        Tensor t = planner.resolve_tensor(item).contiguous();
        if (t.dtype() != item.dtype || t.shape() != item.sizes) {
          throw Error(ErrorCode::kInternal, "memory writer: planner resolved '" + item.fqn + "' to the wrong tensor");
        }
        r.offsets = item.offsets;
        r.sizes = item.sizes;
        const auto* p = static_cast<const std::byte*>(t.data_ptr());
        data.insert(data.end(), p, p + t.nbytes());
      } else {
        Bytes b = planner.resolve_value(item);
        data.insert(data.end(), b.begin(), b.end());
      }
      r.location.byte_length = data.size() - r.location.byte_offset;
      results.push_back(std::move(r));
    }
    if (fail_write_ != FailMode::kNone && results.size() <= 1) {
      // Fewer than two items: fail at the end instead.
      if (fail_write_ == FailMode::kDcppError) {
        throw Error(ErrorCode::kIo, "memory writer of rank " + std::to_string(rank_) + " failed (injected)");
      }
      throw std::runtime_error("injected foreign failure");
    }
    std::lock_guard lock(store_->mu);
    store_->staging[file] = std::move(data);
    return results;
  }
  void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) override {
    for (const auto& per_rank : results) {
      for (const WriteResult& r : per_rank) {
        if (r.type == WriteItemType::kTensor) {
          metadata.tensors.at(r.fqn).chunks.push_back(ChunkMeta{r.offsets, r.sizes, r.location});
        } else {
          metadata.values.at(r.fqn).location = r.location;
        }
      }
    }
    std::lock_guard lock(store_->mu);
    store_->files = std::move(store_->staging);
    store_->staging.clear();
    store_->metadata = std::move(metadata);
    ++store_->commits;
  }
  void abort() noexcept override {
    std::lock_guard lock(store_->mu);
    store_->staging.clear();
    ++store_->aborts;
  }

 private:
  std::shared_ptr<MemoryStore> store_;
  FailMode fail_write_;
  int rank_ = 0;
};

class MemoryReader final : public StorageReader {
 public:
  explicit MemoryReader(std::shared_ptr<MemoryStore> store, FailMode fail_read = FailMode::kNone)
      : store_(std::move(store)), fail_read_(fail_read) {}

  void set_up(int rank, int world_size, bool is_coordinator) override { rank_ = rank; }
  Metadata read_metadata() override {
    std::lock_guard lock(store_->mu);
    if (!store_->metadata) throw Error(ErrorCode::kNotFound, "the memory store holds no checkpoint");
    metadata_ = *store_->metadata;
    return metadata_;
  }
  void read_data(const LoadPlan& plan, LoadPlanner& planner) override {
    std::lock_guard lock(store_->mu);
    for (const ReadItem& item : plan.items) {
      if (fail_read_ == FailMode::kDcppError) {
        throw Error(ErrorCode::kCorrupt, "memory reader of rank " + std::to_string(rank_) + " failed reading '" +
                                             item.fqn + "' (injected)");
      }
      if (fail_read_ == FailMode::kForeignException) throw std::runtime_error("injected foreign read failure");
      if (item.type == ReadItemType::kValue) {
        const StorageLocation& loc = metadata_.values.at(item.fqn).location;
        const Bytes& file = store_->files.at(loc.file);
        Bytes b(file.begin() + loc.byte_offset, file.begin() + loc.byte_offset + loc.byte_length);
        store_->bytes_read += b.size();
        planner.load_value(item, b);
        continue;
      }
      const TensorMeta& tm = metadata_.tensors.at(item.fqn);
      const ChunkMeta& chunk = tm.chunks.at(item.chunk_index);
      Bytes& file = store_->files.at(chunk.location.file);
      Shape strides = contiguous_strides(chunk.sizes);
      int64_t first = 0;
      for (size_t d = 0; d < strides.size(); ++d) first += item.storage_offsets[d] * strides[d];
      std::byte* base = file.data() + chunk.location.byte_offset + first * dtype_size(tm.dtype);
      Tensor src = Tensor::from_blob(base, item.lengths, tm.dtype, strides);
      Tensor dest = planner.resolve_tensor(item);
      dest.copy_from(src);
      store_->bytes_read += src.nbytes();
    }
  }

 private:
  std::shared_ptr<MemoryStore> store_;
  FailMode fail_read_;
  int rank_ = 0;
  Metadata metadata_;
};

}  // namespace dcpp::testing
