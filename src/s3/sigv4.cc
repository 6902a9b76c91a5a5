#include "s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "dcpp/error.h"

namespace dcpp::s3 {
namespace {

std::string to_hex(const unsigned char* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[data[i] >> 4];
    s[2 * i + 1] = digits[data[i] & 0xf];
  }
  return s;
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out, &len)) {
    throw Error(ErrorCode::kInternal, "HMAC-SHA256 failed (OpenSSL)");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Leading and trailing blanks removed, inner runs of blanks folded to one.
std::string trim_value(const std::string& v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string uri_encode(const std::string& s, bool encode_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xf];
    }
  }
  return out;
}

std::string sha256_hex(const void* data, size_t length) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data, length, out, &len, EVP_sha256(), nullptr)) {
    throw Error(ErrorCode::kInternal, "SHA-256 failed (OpenSSL)");
  }
  return to_hex(out, len);
}

std::string md5_base64(const void* data, size_t length) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data, length, digest, &len, EVP_md5(), nullptr)) {
    throw Error(ErrorCode::kInternal, "MD5 failed (OpenSSL)");
  }
  unsigned char b64[64];
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(b64), static_cast<size_t>(n));
}

std::string amz_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string sign_request(SignableRequest& request, const SigningKey& key, const std::string& amz_datetime) {
  const std::string date = amz_datetime.substr(0, 8);
  request.headers.emplace_back("x-amz-date", amz_datetime);
  request.headers.emplace_back("x-amz-content-sha256", request.payload_sha256);
  if (!key.session_token.empty()) request.headers.emplace_back("x-amz-security-token", key.session_token);

  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("host", request.host);
  for (const auto& [name, value] : request.headers) headers.emplace_back(lower(name), trim_value(value));
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + name;
  }
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [name, value] : request.query) query.emplace_back(uri_encode(name, true), uri_encode(value, true));
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [name, value] : query) canonical_query += (canonical_query.empty() ? "" : "&") + name + "=" + value;

  const std::string canonical_request = request.method + "\n" + (request.path.empty() ? "/" : request.path) + "\n" +
                                        canonical_query + "\n" + canonical_headers + "\n" + signed_headers + "\n" +
                                        request.payload_sha256;
  const std::string scope = date + "/" + key.region + "/" + key.service + "/aws4_request";
  const std::string string_to_sign = "AWS4-HMAC-SHA256\n" + amz_datetime + "\n" + scope + "\n" +
                                     sha256_hex(canonical_request.data(), canonical_request.size());
  std::string k = hmac("AWS4" + key.secret_access_key, date);
  k = hmac(k, key.region);
  k = hmac(k, key.service);
  k = hmac(k, "aws4_request");
  const std::string sig = hmac(k, string_to_sign);
  const std::string authorization = "AWS4-HMAC-SHA256 Credential=" + key.access_key_id + "/" + scope +
                                    ", SignedHeaders=" + signed_headers + ", Signature=" +
                                    to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  request.headers.emplace_back("Authorization", authorization);
  return authorization;
}

}  // namespace dcpp::s3
