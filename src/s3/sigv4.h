// AWS Signature Version 4 for S3 requests (private to the s3 layer).
//
// sign_request adds x-amz-date, x-amz-content-sha256, x-amz-security-token
// (with a session token) and Authorization to a request's headers, as
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
// specifies. Pure functions over strings: tested against AWS's published
// examples and against botocore's signer (tests/s3/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dcpp::s3 {

struct SigningKey {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
  std::string region;
  std::string service = "s3";
};

struct SignableRequest {
  std::string method;  // "GET", "PUT", ...
  std::string host;    // the Host header's value ("bucket.s3.amazonaws.com", "127.0.0.1:9000")
  std::string path;    // the URI path as sent, already percent-encoded ("/bucket/a%20b")
  std::vector<std::pair<std::string, std::string>> query;  // decoded names and values
  std::vector<std::pair<std::string, std::string>> headers;  // signed as given (besides host)
  std::string payload_sha256;  // hex, or "UNSIGNED-PAYLOAD"
};

// "20130524T000000Z" for a Unix time.
std::string amz_date(int64_t unix_seconds);

// Adds the signing headers to request.headers and returns the Authorization value.
std::string sign_request(SignableRequest& request, const SigningKey& key, const std::string& amz_datetime);

// RFC 3986 percent-encoding as SigV4 wants it (unreserved characters kept;
// '/' kept when encode_slash is false).
std::string uri_encode(const std::string& s, bool encode_slash);

// Lowercase hex digests (OpenSSL).
std::string sha256_hex(const void* data, size_t length);
std::string md5_base64(const void* data, size_t length);

}  // namespace dcpp::s3
