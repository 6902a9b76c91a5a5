#include "s3/s3_env.h"

#include <cstdlib>
#include <fstream>

namespace dcpp::testing {

const S3TestServer& s3_test_server() {
  static const S3TestServer server = [] {
    S3TestServer s;
    const char* state = std::getenv("DCPP_S3_TEST_STATE");
    if (!state) {
      s.unavailable = "DCPP_S3_TEST_STATE is not set (run through ctest, whose fixture starts the server)";
      return s;
    }
    std::ifstream in(state);
    if (!in) {
      s.unavailable = std::string("no server state file ") + state + " (the s3_server_start fixture did not run)";
      return s;
    }
    std::string word, rest;
    while (in >> word && std::getline(in, rest)) {
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (word == "endpoint") s.endpoint = rest;
      if (word == "skip") s.unavailable = rest;
    }
    if (s.endpoint.empty() && s.unavailable.empty()) s.unavailable = std::string("no endpoint in ") + state;
    return s;
  }();
  return server;
}

S3Options s3_test_options(const std::string& endpoint) {
  S3Options o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  o.access_key_id = "testing";
  o.secret_access_key = "testing";
  o.addressing = S3Options::Addressing::kPath;
  o.part_size = 5 << 20;
  o.upload_concurrency = 4;
  o.retry_base_ms = 10;
  o.retry_max_ms = 200;
  return o;
}

std::shared_ptr<S3FileSystem> s3_test_file_system() {
  static std::shared_ptr<S3FileSystem> fs = std::make_shared<S3FileSystem>(s3_test_options());
  return fs;
}

std::string s3_test_path(const std::string& local) {
  std::string key = local;
  while (!key.empty() && key.front() == '/') key.erase(0, 1);
  return std::string("s3://") + kS3TestBucket + "/" + key;
}

}  // namespace dcpp::testing
