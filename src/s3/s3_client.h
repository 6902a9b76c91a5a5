// S3Client: signed S3 requests over libcurl with retries (private to the s3
// layer; S3FileSystem and its files are built on it).
//
// One send() is one logical request: it is retried with exponential backoff
// on 5xx and 429 answers, dropped or reset connections, short bodies and
// stalls (libcurl's low-speed limit), up to S3Options::max_retries, and
// every error it throws names the method, bucket, key, HTTP status and the
// store's error code. Connections are kept in a pool of curl handles and
// reused. Thread-safety: send() may be called from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/s3_file_system.h"

namespace dcpp::s3 {

// "s3://bucket/a/b" → {"bucket", "a/b"}. Error(kInvalidArgument) for anything else.
struct ObjectName {
  std::string bucket;
  std::string key;  // may be empty (the bucket's root)
  std::string str() const { return "s3://" + bucket + "/" + key; }
};
ObjectName parse_s3_path(const std::string& path);

struct Request {
  Request(std::string m, ObjectName o) : method(std::move(m)), object(std::move(o)) {}
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  ObjectName object;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  const void* body = nullptr;  // PUT/POST payload
  size_t body_length = 0;
  // GET: the body goes here (at most out_capacity bytes) instead of Response::body.
  void* out = nullptr;
  size_t out_capacity = 0;
};

struct Response {
  long status = 0;
  std::string body;                            // unless Request::out
  size_t out_length = 0;                       // bytes stored at Request::out
  std::map<std::string, std::string> headers;  // names lowercase
  int attempts = 0;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  explicit Client(S3Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends with retries. Statuses in `accept` (besides 2xx) come back
  // instead of throwing (404 for a HEAD that asks whether something exists).
  Response send(const Request& request, const std::vector<long>& accept = {});

  const S3Options& options() const { return options_; }

 private:
  struct Handle;
  std::unique_ptr<Handle> acquire();
  void release(std::unique_ptr<Handle> handle);
  bool attempt(Handle& handle, const Request& request, Response& response, std::string& transport_error);

  S3Options options_;
  bool path_style_ = true;
  std::string scheme_, host_;  // from the endpoint
  std::mutex mutex_;
  std::vector<std::unique_ptr<Handle>> idle_;
};

// The text of the first <tag>...</tag> in `xml` from `from`, entities decoded; empty when absent.
std::string xml_value(const std::string& xml, const std::string& tag, size_t from = 0);
// Every <tag>...</tag> in `xml`, decoded.
std::vector<std::string> xml_values(const std::string& xml, const std::string& tag);
std::string xml_escape(const std::string& s);

// Error(kNotFound) for 404, kInvalidArgument for 412 (a precondition such
// as If-None-Match refused the write), kIo otherwise; the message names the
// request, the object and the status.
[[noreturn]] void throw_http_error(const Request& request, const Response& response, const std::string& what);

}  // namespace dcpp::s3
