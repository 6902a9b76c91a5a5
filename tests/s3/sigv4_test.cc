// The SigV4 signer (src/s3/sigv4.h) against AWS's published examples
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html,
// "Examples: Signature Calculations") and against botocore's signer on the
// same requests (tests/s3/botocore_sign.py, in the s3 venv; skipped, saying
// so, without it).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "s3/sigv4.h"
#include "support/distributed.h"

namespace dcpp::s3 {
namespace {

const SigningKey kAwsExampleKey{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", "us-east-1", "s3"};
const char* kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string signature_of(const std::string& authorization) {
  return authorization.substr(authorization.find("Signature=") + 10);
}

TEST(SigV4, AwsExampleGetObject) {
  SignableRequest r{"GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, {{"Range", "bytes=0-9"}}, kEmptySha};
  const std::string auth = sign_request(r, kAwsExampleKey, "20130524T000000Z");
  EXPECT_EQ(auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, AwsExampleListObjects) {
  SignableRequest r{"GET", "examplebucket.s3.amazonaws.com", "/", {{"max-keys", "2"}, {"prefix", "J"}}, {}, kEmptySha};
  EXPECT_EQ(signature_of(sign_request(r, kAwsExampleKey, "20130524T000000Z")),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, AwsExampleGetBucketLifecycle) {
  SignableRequest r{"GET", "examplebucket.s3.amazonaws.com", "/", {{"lifecycle", ""}}, {}, kEmptySha};
  EXPECT_EQ(signature_of(sign_request(r, kAwsExampleKey, "20130524T000000Z")),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, AwsExamplePutObject) {
  const std::string body = "Welcome to Amazon S3.";
  SignableRequest r{"PUT",
                    "examplebucket.s3.amazonaws.com",
                    "/" + uri_encode("test$file.text", false),
                    {},
                    {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                    sha256_hex(body.data(), body.size())};
  EXPECT_EQ(r.payload_sha256, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(signature_of(sign_request(r, kAwsExampleKey, "20130524T000000Z")),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, Md5AndEncoding) {
  EXPECT_EQ(md5_base64("", 0), "1B2M2Y8AsgTpgAmY7PhCfg==");  // RFC 1321's MD5("") in base64
  EXPECT_EQ(uri_encode("a b/c~d*e", false), "a%20b/c~d%2Ae");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(amz_date(1369353600), "20130524T000000Z");
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Random requests of the shapes dcpp sends, signed by both signers.
TEST(SigV4, SameAsBotocore) {
  const std::string python = DCPP_S3_VENV "/bin/python";
  if (!std::filesystem::exists(python)) GTEST_SKIP() << "no " << python << " (scripts/s3-venv.sh makes it)";
  const uint64_t seed = dcpp::testing::test_seed("SigV4.SameAsBotocore");
  std::mt19937_64 rng(seed);
  const std::vector<std::string> keys = {"ckpt/data-00003-0123456789abcdef.bin", "a b/c+d=e&f", "x/dcpp.metadata",
                                         "unicode-\xc3\xa9/~tilde", "step-000100/"};
  const std::vector<std::string> methods = {"GET", "PUT", "POST", "DELETE", "HEAD"};
  std::vector<std::string> ours;
  std::string json = "[";
  for (int i = 0; i < 12; ++i) {
    SigningKey key{"AKID" + std::to_string(rng() % 1000), "secret/" + std::to_string(rng()),
                   i % 3 == 0 ? "token+" + std::to_string(rng()) : "", i % 2 ? "eu-west-3" : "us-east-1", "s3"};
    const std::string& object = keys[rng() % keys.size()];
    SignableRequest r;
    r.method = methods[rng() % methods.size()];
    r.host = i % 2 ? "127.0.0.1:9000" : "bucket.s3.amazonaws.com";
    r.path = (i % 2 ? "/bucket/" : "/") + uri_encode(object, false);
    if (i % 4 == 1) r.query = {{"partNumber", std::to_string(rng() % 10000 + 1)}, {"uploadId", "id/+=" + std::to_string(rng())}};
    if (i % 4 == 2) r.query = {{"list-type", "2"}, {"prefix", object}, {"delimiter", "/"}};
    if (i % 4 == 3) r.headers = {{"Range", "bytes=0-" + std::to_string(rng() % 100000)}, {"If-None-Match", "*"}};
    // botocore hashes the body of a plain-http request itself.
    const std::string body = r.method == "PUT" || r.method == "POST" ? object + std::to_string(rng()) : "";
    r.payload_sha256 = sha256_hex(body.data(), body.size());
    const std::string date = amz_date(1700000000 + static_cast<int64_t>(rng() % 100000000));
    std::string query;
    for (const auto& [k, v] : r.query) query += (query.empty() ? "?" : "&") + uri_encode(k, true) + "=" + uri_encode(v, true);
    std::string headers;
    for (const auto& [k, v] : r.headers) headers += (headers.empty() ? "" : ",") + json_string(k) + ":" + json_string(v);
    json += std::string(i ? "," : "") + "{\"method\":" + json_string(r.method) + ",\"url\":" +
            json_string("http://" + r.host + r.path + query) + ",\"headers\":{" + headers +
            "},\"body\":" + json_string(body) + ",\"amz_date\":" + json_string(date) +
            ",\"region\":" + json_string(key.region) + ",\"access_key\":" + json_string(key.access_key_id) +
            ",\"secret_key\":" + json_string(key.secret_access_key) + ",\"token\":" + json_string(key.session_token) + "}";
    ours.push_back(sign_request(r, key, date));
  }
  json += "]";
  dcpp::testing::TempDir dir;
  const std::string in = dir.path() + "/requests.json";
  std::ofstream(in) << json;
  const std::string cmd = python + " " + DCPP_SOURCE_DIR "/tests/s3/botocore_sign.py < " + in;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << cmd << "\n" << out;
  std::istringstream lines(out);
  for (size_t i = 0; i < ours.size(); ++i) {
    std::string theirs;
    std::getline(lines, theirs);
    EXPECT_EQ(ours[i], theirs) << "request " << i << " (seed " << seed << ")";
  }
}

}  // namespace
}  // namespace dcpp::s3
