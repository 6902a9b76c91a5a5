// The file objects of S3FileSystem and the state they share with it
// (private to the s3 layer).
#pragma once

#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dcpp/s3_file_system.h"
#include "io/thread_pool.h"
#include "s3/s3_client.h"

namespace dcpp {

class S3FileSystem::Impl {
 public:
  explicit Impl(const S3Options& options) : client(options) {}
  s3::Client client;
  // Upload threads, made on the first multipart upload.
  ThreadPool& pool();

 private:
  std::mutex mutex_;
  std::unique_ptr<ThreadPool> pool_;
};

namespace s3 {

// A ranged-GET view of one object; its size is read once, at open.
class ReadFile final : public RandomAccessFile {
 public:
  ReadFile(Client& client, std::string path, ObjectName object, uint64_t size)
      : RandomAccessFile(std::move(path), false), client_(client), object_(std::move(object)), size_(size) {}
  size_t read(void* data, size_t length, uint64_t offset) override;
  uint64_t size() override { return size_; }

 private:
  Client& client_;
  ObjectName object_;
  uint64_t size_;
};

// A multipart upload fed by positional writes (dcpp/s3_file_system.h).
// Part k holds bytes [k·part, (k+1)·part); it is uploaded once all its bytes
// are written and some byte after it is (the last part may still be cut by
// truncate). Writers wait while upload_concurrency parts are in flight.
class WriteFile final : public WritableFile {
 public:
  WriteFile(S3FileSystem::Impl& fs, std::string path, ObjectName object, bool direct, bool exclusive);
  ~WriteFile() override;
  size_t write(const void* data, size_t length, uint64_t offset) override;
  // Nothing is durable before close(): an object store has no partial objects.
  void sync() override {}
  void truncate(uint64_t length) override;
  void close() override;

 private:
  struct Part {
    std::vector<std::byte> bytes;  // part_size, zero-filled: bytes never written (gaps) read as zeros
    uint64_t filled = 0;
    bool uploading = false;
  };
  void schedule_ready(std::unique_lock<std::mutex>& lock);
  void start_upload(uint64_t index, std::unique_lock<std::mutex>& lock);
  void upload_part(uint64_t index, const std::byte* data, size_t length);
  void ensure_upload_id();
  void wait_idle(std::unique_lock<std::mutex>& lock);
  void abort_upload() noexcept;
  void put_whole(const std::byte* data, size_t length);
  void complete(uint64_t parts, uint64_t length);
  void refused(const Request& request, const Response& response, uint64_t length);

  S3FileSystem::Impl& fs_;
  Client& client_;
  ObjectName object_;
  bool exclusive_;
  uint64_t part_size_;
  size_t concurrency_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<uint64_t, Part> parts_;           // not yet uploaded
  std::map<uint64_t, std::string> etags_;    // part index → ETag of the uploaded part
  uint64_t max_end_ = 0;
  std::optional<uint64_t> length_;           // set by truncate
  size_t in_flight_ = 0;
  std::exception_ptr error_;
  bool closed_ = false;
  std::mutex create_mutex_;
  std::string upload_id_;
};

}  // namespace s3
}  // namespace dcpp
