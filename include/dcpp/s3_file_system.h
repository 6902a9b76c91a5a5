// S3FileSystem: the byte-store seam (dcpp/io.h) over an S3-compatible object
// store (AWS S3, MinIO, Ceph RGW, moto), so the native format, its read
// engine and every tool work on "s3://bucket/prefix" paths unchanged.
//
// Paths are "s3://<bucket>/<key>"; a "directory" is a key prefix ending in
// '/' (it exists while some object lies under it). open_read gives ranged
// GETs; open_write a multipart upload: positional writes fill fixed-size
// parts, each part is uploaded in parallel (up to `upload_concurrency` per
// file) once it is complete, and close() completes the upload, which is when
// the object appears, whole, or not at all (a file that is never closed, or
// fails, aborts its upload). A file smaller than one part is one PUT. Every
// request is signed with AWS Signature V4 and retried with exponential
// backoff on 5xx answers (503 SlowDown included), dropped connections and
// stalls; errors name the bucket, key and HTTP status. There is no rename:
// atomic_rename() is false, and the native writer commits by writing the
// metadata object last (docs/design.md, "Commit without rename").
//
// Ownership: the file system owns a pool of HTTP connections and the upload
// threads; files opened through it refer to it (destroy them first).
// Thread-safety: every call may come from any thread; one file object
// serves positional reads or writes of disjoint ranges from several threads,
// as the seam requires. libcurl and OpenSSL stay private to this layer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dcpp/io.h"

namespace dcpp {

struct S3Options {
  // Empty fields come from the environment: AWS_ENDPOINT_URL (else
  // https://s3.<region>.amazonaws.com), AWS_REGION (else AWS_DEFAULT_REGION,
  // else us-east-1), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  // AWS_SESSION_TOKEN. No credentials at all: requests go unsigned.
  std::string endpoint;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  // Path-style "<endpoint>/<bucket>/<key>" (MinIO, moto, most local stores)
  // or virtual-host "<bucket>.<endpoint host>/<key>" (AWS). Unset: path
  // style for an endpoint from options or AWS_ENDPOINT_URL, virtual host for
  // AWS itself. DCPP_S3_ADDRESSING=path|virtual overrides it.
  enum class Addressing { kAuto, kPath, kVirtualHost };
  Addressing addressing = Addressing::kAuto;
  // Multipart uploads: bytes per part (S3 requires at least 5 MiB for every
  // part but the last) and parts uploaded at once per file
  // (DCPP_S3_PART_SIZE, DCPP_S3_UPLOAD_CONCURRENCY override them).
  uint64_t part_size = 16 << 20;
  size_t upload_concurrency = 8;
  // Content-MD5 on every PUT of data: the store checks the bytes it received
  // (DCPP_S3_CONTENT_MD5=0 turns it off).
  bool content_md5 = true;
  // Retries of a failed request (5xx, dropped connection, stall) with
  // exponential backoff from retry_base_ms, doubling, at most retry_max_ms.
  int max_retries = 6;
  int retry_base_ms = 50;
  int retry_max_ms = 2000;
  // A request that moves fewer than 1 byte/s for this long is dropped and
  // retried; a request never takes longer than request_timeout_ms in all.
  int connect_timeout_ms = 5000;
  int stall_timeout_ms = 10000;
  int request_timeout_ms = 300000;
};

// The options with every empty field filled from the environment.
S3Options s3_options_from_environment(S3Options options = {});

// "s3://..." (scheme in any case).
bool is_s3_path(const std::string& path);

class S3FileSystem final : public FileSystem {
 public:
  explicit S3FileSystem(S3Options options = s3_options_from_environment());
  ~S3FileSystem() override;

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path, const OpenReadOptions& options = {}) override;
  // `exclusive` sends If-None-Match: * (the store refuses to replace an
  // existing object: Error(kInvalidArgument) naming it); `create` and
  // `truncate` are what an object store always does; `try_direct` makes the
  // file report direct(), so writers pad to whole pages and leave no gaps
  // (a part is uploaded when all its bytes are written).
  std::unique_ptr<WritableFile> open_write(const std::string& path, const OpenWriteOptions& options = {}) override;
  // Server-side copy, then delete: not atomic; objects only, not prefixes.
  void rename(const std::string& from, const std::string& to) override;
  bool rename_exchange(const std::string& a, const std::string& b) override { return false; }
  // Prefixes need no creation: true when nothing lies under the prefix yet.
  bool mkdir(const std::string& path) override;
  bool remove(const std::string& path) override;
  void remove_all(const std::string& path) override;
  std::vector<std::string> list_dir(const std::string& path) override;
  // kRegular for an object, kDirectory for a prefix holding objects.
  FileType file_type(const std::string& path) override;
  uint64_t file_size(const std::string& path) override;
  void fsync_dir(const std::string& path) override {}
  uint64_t free_space(const std::string& path) override { return UINT64_MAX; }
  bool atomic_rename() const override { return false; }

  const S3Options& options() const { return options_; }

  class Impl;

 private:
  S3Options options_;
  std::unique_ptr<Impl> impl_;
};

// The file system for `path`: an S3FileSystem (options from the
// environment) for s3:// paths, default_file_system() otherwise.
FileSystemPtr file_system_for_path(const std::string& path);

}  // namespace dcpp
