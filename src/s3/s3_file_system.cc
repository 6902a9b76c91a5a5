// S3FileSystem: names and reads (s3_files.h has the file objects).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "s3/s3_files.h"

namespace dcpp {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string dir_prefix(const std::string& key) {
  if (key.empty()) return {};
  return key.back() == '/' ? key : key + "/";
}

}  // namespace

S3Options s3_options_from_environment(S3Options o) {
  const bool endpoint_given = !o.endpoint.empty() || !env("AWS_ENDPOINT_URL_S3").empty() || !env("AWS_ENDPOINT_URL").empty();
  if (o.region.empty()) o.region = env("AWS_REGION");
  if (o.region.empty()) o.region = env("AWS_DEFAULT_REGION");
  if (o.region.empty()) o.region = "us-east-1";
  if (o.endpoint.empty()) o.endpoint = env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = env("AWS_ENDPOINT_URL");
  if (o.endpoint.empty()) o.endpoint = "https://s3." + o.region + ".amazonaws.com";
  if (o.access_key_id.empty() && o.secret_access_key.empty()) {
    o.access_key_id = env("AWS_ACCESS_KEY_ID");
    o.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    if (o.session_token.empty()) o.session_token = env("AWS_SESSION_TOKEN");
  }
  if (const std::string v = env("DCPP_S3_PART_SIZE"); !v.empty()) o.part_size = std::strtoull(v.c_str(), nullptr, 10);
  if (const std::string v = env("DCPP_S3_UPLOAD_CONCURRENCY"); !v.empty()) {
    o.upload_concurrency = static_cast<size_t>(std::strtoull(v.c_str(), nullptr, 10));
  }
  if (env("DCPP_S3_CONTENT_MD5") == "0") o.content_md5 = false;
  const std::string addressing = env("DCPP_S3_ADDRESSING");
  if (addressing == "path") o.addressing = S3Options::Addressing::kPath;
  if (addressing == "virtual") o.addressing = S3Options::Addressing::kVirtualHost;
  if (o.addressing == S3Options::Addressing::kAuto) {
    o.addressing = endpoint_given ? S3Options::Addressing::kPath : S3Options::Addressing::kVirtualHost;
  }
  return o;
}

bool is_s3_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string scheme = path.substr(0, 5);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme == "s3://";
}

FileSystemPtr file_system_for_path(const std::string& path) {
  if (is_s3_path(path)) return std::make_shared<S3FileSystem>();
  return default_file_system();
}

ThreadPool& S3FileSystem::Impl::pool() {
  std::lock_guard lock(mutex_);
  if (!pool_) pool_ = std::make_unique<ThreadPool>(std::max<size_t>(1, client.options().upload_concurrency));
  return *pool_;
}

S3FileSystem::S3FileSystem(S3Options options)
    : options_(s3_options_from_environment(std::move(options))), impl_(std::make_unique<Impl>(options_)) {}

S3FileSystem::~S3FileSystem() = default;

namespace s3 {

size_t ReadFile::read(void* data, size_t length, uint64_t offset) {
  if (offset >= size_ || length == 0) return 0;
  const uint64_t end = std::min<uint64_t>(size_, offset + length);
  Request r("GET", object_);
  r.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(end - 1));
  r.out = data;
  r.out_capacity = static_cast<size_t>(end - offset);
  Response resp = client_.send(r, {416});
  if (resp.status == 416) return 0;
  if (resp.status == 200 && offset != 0) {
    throw Error(ErrorCode::kIo, "GET " + object_.str() + " at byte offset " + std::to_string(offset) +
                                    ": the store ignored the Range header");
  }
  return resp.out_length;
}

}  // namespace s3

std::unique_ptr<RandomAccessFile> S3FileSystem::open_read(const std::string& path, const OpenReadOptions&) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  s3::Request r("HEAD", obj);
  s3::Response resp = impl_->client.send(r, {404});
  if (resp.status == 404) throw Error(ErrorCode::kNotFound, "open " + obj.str() + " for reading: no such object");
  const uint64_t size = std::strtoull(resp.header("content-length").c_str(), nullptr, 10);
  return std::make_unique<s3::ReadFile>(impl_->client, path, std::move(obj), size);
}

std::unique_ptr<WritableFile> S3FileSystem::open_write(const std::string& path, const OpenWriteOptions& options) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  if (obj.key.empty() || obj.key.back() == '/') {
    throw Error(ErrorCode::kInvalidArgument, "open '" + path + "' for writing: not an object name");
  }
  return std::make_unique<s3::WriteFile>(*impl_, path, std::move(obj), options.try_direct, options.exclusive);
}

void S3FileSystem::rename(const std::string& from, const std::string& to) {
  s3::ObjectName a = s3::parse_s3_path(from), b = s3::parse_s3_path(to);
  s3::Request copy("PUT", b);
  copy.headers.emplace_back("x-amz-copy-source", "/" + a.bucket + "/" + a.key);
  impl_->client.send(copy);
  s3::Request del("DELETE", a);
  impl_->client.send(del, {404});
}

bool S3FileSystem::mkdir(const std::string& path) { return file_type(path) != FileType::kDirectory; }

bool S3FileSystem::remove(const std::string& path) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  if (file_type(path) != FileType::kRegular) return false;
  s3::Request del("DELETE", obj);
  impl_->client.send(del, {404});
  return true;
}

namespace {

// ListObjectsV2 of everything under `prefix` (with `delimiter`, one level).
void list_objects(s3::Client& client, const s3::ObjectName& where, const std::string& prefix,
                  const std::string& delimiter, size_t max, std::vector<std::string>& keys,
                  std::vector<std::string>& prefixes) {
  std::string token;
  for (;;) {
    s3::Request r("GET", s3::ObjectName{where.bucket, ""});
    r.query = {{"list-type", "2"}, {"prefix", prefix}};
    if (!delimiter.empty()) r.query.emplace_back("delimiter", delimiter);
    if (max > 0) r.query.emplace_back("max-keys", std::to_string(max));
    if (!token.empty()) r.query.emplace_back("continuation-token", token);
    s3::Response resp = client.send(r);
    for (auto& k : s3::xml_values(resp.body, "Key")) keys.push_back(std::move(k));
    for (const std::string& cp : s3::xml_values(resp.body, "CommonPrefixes")) {
      prefixes.push_back(s3::xml_value("<x>" + cp + "</x>", "Prefix"));
    }
    if (max > 0 || s3::xml_value(resp.body, "IsTruncated") != "true") return;
    token = s3::xml_value(resp.body, "NextContinuationToken");
    if (token.empty()) return;
  }
}

}  // namespace

void S3FileSystem::remove_all(const std::string& path) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  std::vector<std::string> keys, prefixes;
  list_objects(impl_->client, obj, dir_prefix(obj.key), "", 0, keys, prefixes);
  if (!obj.key.empty()) keys.push_back(obj.key);
  for (const std::string& key : keys) {
    s3::Request del("DELETE", s3::ObjectName{obj.bucket, key});
    impl_->client.send(del, {404});
  }
}

std::vector<std::string> S3FileSystem::list_dir(const std::string& path) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  const std::string prefix = dir_prefix(obj.key);
  std::vector<std::string> keys, prefixes;
  list_objects(impl_->client, obj, prefix, "/", 0, keys, prefixes);
  std::set<std::string> names;
  for (const std::string& k : keys) {
    if (k.size() > prefix.size()) names.insert(k.substr(prefix.size()));
  }
  for (const std::string& p : prefixes) {
    std::string name = p.substr(prefix.size());
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (!name.empty()) names.insert(name);
  }
  return {names.begin(), names.end()};
}

FileType S3FileSystem::file_type(const std::string& path) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  if (obj.key.empty()) return FileType::kDirectory;
  if (obj.key.back() != '/') {
    s3::Request head("HEAD", obj);
    if (impl_->client.send(head, {404}).status != 404) return FileType::kRegular;
  }
  std::vector<std::string> keys, prefixes;
  list_objects(impl_->client, obj, dir_prefix(obj.key), "/", 1, keys, prefixes);
  return keys.empty() && prefixes.empty() ? FileType::kNone : FileType::kDirectory;
}

uint64_t S3FileSystem::file_size(const std::string& path) {
  s3::ObjectName obj = s3::parse_s3_path(path);
  s3::Request head("HEAD", obj);
  s3::Response resp = impl_->client.send(head, {404});
  if (resp.status == 404) throw Error(ErrorCode::kNotFound, "size of " + obj.str() + ": no such object");
  return std::strtoull(resp.header("content-length").c_str(), nullptr, 10);
}

}  // namespace dcpp
