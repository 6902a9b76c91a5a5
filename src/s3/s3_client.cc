#include "s3/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>

#include "s3/sigv4.h"

namespace dcpp::s3 {
namespace {

std::once_flag curl_once;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string decode_entities(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string::npos) {
      out += s[i];
      continue;
    }
    const std::string ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      const long code = ent.size() > 1 && ent[1] == 'x' ? std::strtol(ent.c_str() + 2, nullptr, 16)
                                                        : std::strtol(ent.c_str() + 1, nullptr, 10);
      out += static_cast<char>(code);  // keys dcpp writes are ASCII
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

struct Transfer {
  const Request* request = nullptr;
  Response* response = nullptr;
  size_t sent = 0;
  bool overflow = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->request->out) {
    if (t->response->status >= 200 && t->response->status < 300) {
      if (t->response->out_length + len > t->request->out_capacity) {
        t->overflow = true;
        return 0;
      }
      std::memcpy(static_cast<char*>(t->request->out) + t->response->out_length, data, len);
      t->response->out_length += len;
      return len;
    }
  }
  t->response->body.append(data, len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  std::string line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a 100 Continue): forget the last one's headers.
    t->response->headers.clear();
    const size_t sp = line.find(' ');
    if (sp != std::string::npos) t->response->status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return len;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string value = line.substr(colon + 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
  size_t start = 0;
  while (start < value.size() && value[start] == ' ') ++start;
  t->response->headers[lower(line.substr(0, colon))] = value.substr(start);
  return len;
}

size_t on_read(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t left = t->request->body_length - t->sent;
  const size_t len = std::min(left, size * n);
  std::memcpy(buffer, static_cast<const char*>(t->request->body) + t->sent, len);
  t->sent += len;
  return len;
}

// Rewinds the upload when libcurl resends the body (a redirect, an auth retry).
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->request->body_length) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

bool retryable_status(long status) { return status >= 500 || status == 429 || status == 408; }

}  // namespace

ObjectName parse_s3_path(const std::string& path) {
  if (path.size() < 5 || lower(path.substr(0, 5)) != "s3://") {
    throw Error(ErrorCode::kInvalidArgument, "'" + path + "' is not an s3:// path");
  }
  const std::string rest = path.substr(5);
  const size_t slash = rest.find('/');
  ObjectName name;
  name.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) name.key = rest.substr(slash + 1);
  if (name.bucket.empty()) throw Error(ErrorCode::kInvalidArgument, "'" + path + "' names no bucket");
  return name;
}

std::string xml_value(const std::string& xml, const std::string& tag, size_t from) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  const size_t a = xml.find(open, from);
  if (a == std::string::npos) return {};
  const size_t b = xml.find(close, a + open.size());
  if (b == std::string::npos) return {};
  return decode_entities(xml.substr(a + open.size(), b - a - open.size()));
}

std::vector<std::string> xml_values(const std::string& xml, const std::string& tag) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  std::vector<std::string> out;
  for (size_t at = 0;;) {
    const size_t a = xml.find(open, at);
    if (a == std::string::npos) break;
    const size_t b = xml.find(close, a + open.size());
    if (b == std::string::npos) break;
    out.push_back(decode_entities(xml.substr(a + open.size(), b - a - open.size())));
    at = b + close.size();
  }
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

void throw_http_error(const Request& request, const Response& response, const std::string& what) {
  std::string message = request.method + " " + request.object.str() + ": ";
  if (response.status == 0) {
    message += what;
  } else {
    message += "HTTP status " + std::to_string(response.status);
    const std::string code = xml_value(response.body, "Code");
    const std::string text = xml_value(response.body, "Message");
    if (!code.empty()) message += " " + code;
    if (!text.empty()) message += " (" + text + ")";
    if (!what.empty()) message += "; " + what;
  }
  if (response.attempts > 1) message += " after " + std::to_string(response.attempts) + " attempts";
  ErrorCode code = ErrorCode::kIo;
  if (response.status == 404) code = ErrorCode::kNotFound;
  if (response.status == 412) code = ErrorCode::kInvalidArgument;
  throw Error(code, message);
}

struct Client::Handle {
  CURL* curl = nullptr;
  Handle() : curl(curl_easy_init()) {
    if (!curl) throw Error(ErrorCode::kInternal, "curl_easy_init failed");
  }
  ~Handle() { curl_easy_cleanup(curl); }
};

Client::Client(S3Options options) : options_(std::move(options)) {
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::string endpoint = options_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const size_t sep = endpoint.find("://");
  if (sep == std::string::npos) throw Error(ErrorCode::kInvalidArgument, "S3 endpoint '" + endpoint + "' has no scheme");
  scheme_ = endpoint.substr(0, sep);
  host_ = endpoint.substr(sep + 3);
  path_style_ = options_.addressing != S3Options::Addressing::kVirtualHost;
}

Client::~Client() = default;

std::unique_ptr<Client::Handle> Client::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void Client::release(std::unique_ptr<Handle> handle) {
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(handle));
}

bool Client::attempt(Handle& handle, const Request& request, Response& response, std::string& transport_error) {
  CURL* c = handle.curl;
  curl_easy_reset(c);
  response = Response{};

  SignableRequest sreq;
  sreq.method = request.method;
  std::string path;
  if (path_style_) {
    sreq.host = host_;
    path = "/" + uri_encode(request.object.bucket, true) + "/" + uri_encode(request.object.key, false);
  } else {
    sreq.host = request.object.bucket + "." + host_;
    path = "/" + uri_encode(request.object.key, false);
  }
  sreq.path = path;
  sreq.query = request.query;
  sreq.headers = request.headers;
  sreq.payload_sha256 = "UNSIGNED-PAYLOAD";
  if (request.body_length == 0 || request.method == "POST") {
    sreq.payload_sha256 = sha256_hex(request.body ? request.body : "", request.body_length);
  }
  if (!options_.access_key_id.empty()) {
    sign_request(sreq, SigningKey{options_.access_key_id, options_.secret_access_key, options_.session_token,
                                  options_.region, "s3"},
                 amz_date(static_cast<int64_t>(std::time(nullptr))));
  }
  std::string url = scheme_ + "://" + sreq.host + path;
  std::string query;
  for (const auto& [k, v] : request.query) {
    query += (query.empty() ? "?" : "&") + uri_encode(k, true) + (v.empty() && k == "uploads" ? "" : "=" + uri_encode(v, true));
  }
  url += query;

  struct curl_slist* headers = nullptr;
  for (const auto& [k, v] : sreq.headers) headers = curl_slist_append(headers, (k + ": " + v).c_str());
  headers = curl_slist_append(headers, "Expect:");
  if (request.method == "POST" || request.method == "PUT") headers = curl_slist_append(headers, "Content-Type:");

  Transfer t{&request, &response, 0, false};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(std::max(1, options_.stall_timeout_ms / 1000)));
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_length));
    // Larger reads from the part buffer: fewer callbacks and send calls.
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
  } else if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body ? static_cast<const char*>(request.body) : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body_length));
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) response.status = status;
  if (rc != CURLE_OK) {
    transport_error = t.overflow ? "the response body was longer than the range asked for"
                                 : std::string("transport error: ") + curl_easy_strerror(rc);
    response.status = 0;
    return false;
  }
  // A body cut short without the transport noticing (a response without a
  // length): compare with Content-Length.
  if (request.out && response.status >= 200 && response.status < 300) {
    const std::string len = response.header("content-length");
    if (!len.empty() && std::strtoull(len.c_str(), nullptr, 10) != response.out_length) {
      transport_error = "response body of " + std::to_string(response.out_length) + " bytes, Content-Length says " + len;
      response.status = 0;
      return false;
    }
  }
  return true;
}

Response Client::send(const Request& request, const std::vector<long>& accept) {
  std::unique_ptr<Handle> handle = acquire();
  std::mt19937_64 rng(std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  Response response;
  std::string transport_error;
  const int attempts = std::max(1, options_.max_retries + 1);
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) {
      const int cap = std::min(options_.retry_max_ms, options_.retry_base_ms << std::min(i - 1, 16));
      // Full jitter: ranks retrying after one failure of the store spread out.
      std::uniform_int_distribution<int> jitter(cap / 2, std::max(cap / 2, cap));
      std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
    }
    transport_error.clear();
    const bool completed = attempt(*handle, request, response, transport_error);
    response.attempts = i + 1;
    if (!completed) {
      // A connection that failed mid-transfer is not reused.
      handle = std::make_unique<Handle>();
      continue;
    }
    // CompleteMultipartUpload may answer 200 with an error in the body.
    const bool body_error = response.status == 200 && request.method == "POST" &&
                            response.body.find("<Error>") != std::string::npos;
    if (body_error) {
      const std::string code = xml_value(response.body, "Code");
      if (code == "InternalError" || code == "SlowDown" || code == "ServiceUnavailable") continue;
      release(std::move(handle));
      throw_http_error(request, response, "error in a 200 response body");
    }
    if (response.status >= 200 && response.status < 300) break;
    if (std::find(accept.begin(), accept.end(), response.status) != accept.end()) break;
    if (!retryable_status(response.status)) break;
  }
  release(std::move(handle));
  const bool ok = response.status >= 200 && response.status < 300;
  if (!ok && std::find(accept.begin(), accept.end(), response.status) == accept.end()) {
    throw_http_error(request, response, transport_error);
  }
  return response;
}

}  // namespace dcpp::s3
