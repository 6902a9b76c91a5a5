// s3::WriteFile: positional writes into a multipart upload (s3_files.h).
#include <algorithm>
#include <cstring>

#include "s3/s3_files.h"
#include "s3/sigv4.h"

namespace dcpp::s3 {

namespace {
constexpr uint64_t kMinPartSize = 5 << 20;  // S3's smallest part but the last
}

WriteFile::WriteFile(S3FileSystem::Impl& fs, std::string path, ObjectName object, bool direct, bool exclusive)
    : WritableFile(std::move(path), direct),
      fs_(fs),
      client_(fs.client),
      object_(std::move(object)),
      exclusive_(exclusive),
      part_size_(std::max<uint64_t>(fs.client.options().part_size, kMinPartSize)),
      concurrency_(std::max<size_t>(1, fs.client.options().upload_concurrency)) {}

WriteFile::~WriteFile() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
  if (!closed_) {
    lock.unlock();
    abort_upload();
  }
}

size_t WriteFile::write(const void* data, size_t length, uint64_t offset) {
  const auto* src = static_cast<const std::byte*>(data);
  std::unique_lock lock(mutex_);
  if (closed_) throw Error(ErrorCode::kInternal, "write to " + object_.str() + " after close");
  if (error_) std::rethrow_exception(error_);
  for (uint64_t done = 0; done < length;) {
    const uint64_t at = offset + done;
    const uint64_t index = at / part_size_;
    const uint64_t in_part = at - index * part_size_;
    const uint64_t n = std::min<uint64_t>(length - done, part_size_ - in_part);
    if (etags_.count(index) || (parts_.count(index) && parts_[index].uploading)) {
      throw Error(ErrorCode::kUnsupported, "write to " + object_.str() + " at byte offset " + std::to_string(at) +
                                               ": that part is already uploaded (S3 objects are written once)");
    }
    Part& part = parts_[index];
    if (part.bytes.empty()) {
      lock.unlock();
      std::vector<std::byte> bytes(part_size_);
      lock.lock();
      if (part.bytes.empty()) part.bytes = std::move(bytes);
    }
    std::byte* dst = part.bytes.data() + in_part;
    // Other threads write disjoint ranges: the copy needs no lock, and the
    // part cannot be uploaded before this copy is counted.
    lock.unlock();
    std::memcpy(dst, src + done, static_cast<size_t>(n));
    lock.lock();
    part.filled += n;
    max_end_ = std::max(max_end_, at + n);
    done += n;
  }
  schedule_ready(lock);
  if (error_) std::rethrow_exception(error_);
  return length;
}

void WriteFile::schedule_ready(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    auto it = std::find_if(parts_.begin(), parts_.end(), [&](const auto& p) {
      return !p.second.uploading && p.second.filled >= part_size_ && max_end_ > (p.first + 1) * part_size_;
    });
    if (it == parts_.end() || error_) return;
    start_upload(it->first, lock);
  }
}

void WriteFile::start_upload(uint64_t index, std::unique_lock<std::mutex>& lock) {
  Part& part = parts_.at(index);
  part.uploading = true;  // before waiting: no other thread picks it meanwhile
  // Backpressure: the writer waits for a free upload slot.
  cv_.wait(lock, [&] { return in_flight_ < concurrency_ || error_; });
  if (error_) return;
  ++in_flight_;
  uint64_t length = part_size_;
  if (length_) length = std::min<uint64_t>(part_size_, *length_ - index * part_size_);
  const std::byte* data = part.bytes.data();
  // The file outlives its uploads: the destructor waits for in_flight_ == 0.
  fs_.pool().submit([this, index, data, length] {
    std::exception_ptr failure;
    try {
      upload_part(index, data, static_cast<size_t>(length));
    } catch (...) {
      failure = std::current_exception();
    }
    std::lock_guard guard(mutex_);
    if (failure && !error_) error_ = failure;
    if (!failure) parts_.erase(index);
    --in_flight_;
    cv_.notify_all();
  });
}

void WriteFile::ensure_upload_id() {
  std::lock_guard guard(create_mutex_);
  if (!upload_id_.empty()) return;
  Request r("POST", object_);
  r.query = {{"uploads", ""}};
  Response resp = client_.send(r);
  std::string id = xml_value(resp.body, "UploadId");
  if (id.empty()) {
    throw Error(ErrorCode::kIo, "POST " + object_.str() + "?uploads: no UploadId in the answer (HTTP status " +
                                    std::to_string(resp.status) + ")");
  }
  upload_id_ = id;
}

void WriteFile::upload_part(uint64_t index, const std::byte* data, size_t length) {
  ensure_upload_id();
  Request r("PUT", object_);
  r.query = {{"partNumber", std::to_string(index + 1)}, {"uploadId", upload_id_}};
  if (client_.options().content_md5) r.headers.emplace_back("Content-MD5", md5_base64(data, length));
  r.body = data;
  r.body_length = length;
  Response resp = client_.send(r);
  const std::string etag = resp.header("etag");
  if (etag.empty()) {
    throw Error(ErrorCode::kIo, "PUT " + object_.str() + " part " + std::to_string(index + 1) + ": no ETag in the answer");
  }
  std::lock_guard guard(mutex_);
  etags_[index] = etag;
}

void WriteFile::truncate(uint64_t length) {
  std::unique_lock lock(mutex_);
  for (const auto& [index, etag] : etags_) {
    if ((index + 1) * part_size_ > length) {
      throw Error(ErrorCode::kUnsupported, "truncate " + object_.str() + " to " + std::to_string(length) +
                                               " bytes: part " + std::to_string(index + 1) + " is already uploaded");
    }
  }
  length_ = length;
}

void WriteFile::wait_idle(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void WriteFile::put_whole(const std::byte* data, size_t length) {
  Request r("PUT", object_);
  if (exclusive_) r.headers.emplace_back("If-None-Match", "*");
  if (client_.options().content_md5) r.headers.emplace_back("Content-MD5", md5_base64(data, length));
  r.body = data;
  r.body_length = length;
  Response resp = client_.send(r, exclusive_ ? std::vector<long>{403, 412} : std::vector<long>{});
  if (resp.status == 403 || resp.status == 412) refused(r, resp, length);
}

// S3 answers a refused If-None-Match with 412; some stores (moto) with 403.
// Either way the object must exist now, or it was a real denial.
void WriteFile::refused(const Request& request, const Response& response, uint64_t length) {
  Request head("HEAD", object_);
  Response h = client_.send(head, {404});
  if (h.status == 404) throw_http_error(request, response, "");
  // A retry after a lost answer may find its own object.
  if (response.attempts > 1 && std::strtoull(h.header("content-length").c_str(), nullptr, 10) == length) return;
  Response shown = response;
  shown.status = 412;
  throw_http_error(request, shown, "the object exists and the write was exclusive (If-None-Match: *)");
}

void WriteFile::complete(uint64_t parts, uint64_t length) {
  std::string xml = "<CompleteMultipartUpload>";
  for (uint64_t i = 0; i < parts; ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + xml_escape(etags_.at(i)) +
           "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Request r("POST", object_);
  r.query = {{"uploadId", upload_id_}};
  if (exclusive_) r.headers.emplace_back("If-None-Match", "*");
  r.body = xml.data();
  r.body_length = xml.size();
  Response resp = client_.send(r, exclusive_ ? std::vector<long>{403, 404, 412} : std::vector<long>{404});
  if (resp.status == 403 || resp.status == 412) refused(r, resp, length);
  if (resp.status == 404) {
    // An earlier attempt may have completed the upload and lost its answer.
    if (resp.attempts > 1) {
      Request head("HEAD", object_);
      Response h = client_.send(head, {404});
      if (h.status == 200 && std::strtoull(h.header("content-length").c_str(), nullptr, 10) == length) return;
    }
    throw_http_error(r, resp, "the upload is gone");
  }
}

void WriteFile::close() {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  wait_idle(lock);
  if (error_) {
    std::exception_ptr e = error_;
    closed_ = true;
    lock.unlock();
    abort_upload();
    std::rethrow_exception(e);
  }
  const uint64_t length = length_ ? *length_ : max_end_;
  length_ = length;
  try {
    if (upload_id_.empty() && length <= part_size_) {
      auto it = parts_.find(0);
      std::vector<std::byte> empty;
      const std::byte* data = it != parts_.end() ? it->second.bytes.data() : empty.data();
      lock.unlock();
      put_whole(data, static_cast<size_t>(length));
      lock.lock();
    } else {
      const uint64_t count = (length + part_size_ - 1) / part_size_;
      for (uint64_t i = 0; i < count; ++i) {
        if (etags_.count(i)) continue;
        Part& part = parts_[i];
        if (part.bytes.empty()) part.bytes.assign(part_size_, std::byte{0});  // a gap: zeros, as a file reads
        part.filled = part_size_;
        start_upload(i, lock);
        if (error_) break;
      }
      wait_idle(lock);
      if (error_) std::rethrow_exception(error_);
      lock.unlock();
      complete(count, length);
      lock.lock();
    }
    closed_ = true;
    parts_.clear();
  } catch (...) {
    closed_ = true;
    if (lock.owns_lock()) lock.unlock();
    abort_upload();
    throw;
  }
}

void WriteFile::abort_upload() noexcept {
  try {
    std::lock_guard guard(create_mutex_);
    if (upload_id_.empty()) return;
    Request r("DELETE", object_);
  r.query = {{"uploadId", upload_id_}};
    client_.send(r, {404});
    upload_id_.clear();
  } catch (...) {
    // Runs on the error path: the first error is the one to report. A store
    // keeps an upload it could not abort until its lifecycle rule expires it.
  }
}

}  // namespace dcpp::s3
