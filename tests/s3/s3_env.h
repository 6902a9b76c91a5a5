// Test support for the s3 tests: the S3-compatible server (moto, on the
// loopback) that the ctest fixture of tests/s3/tests.cmake starts, and the
// S3FileSystem the tests use with it. DCPP_S3_TEST_STATE names the
// fixture's state file; without a server every test skips, saying why.
#pragma once

#include <memory>
#include <string>

#include "dcpp/s3_file_system.h"

namespace dcpp::testing {

inline constexpr const char* kS3TestBucket = "dcpp-test";

struct S3TestServer {
  std::string endpoint;     // "http://127.0.0.1:<port>"
  std::string unavailable;  // non-empty: why there is no server
};
const S3TestServer& s3_test_server();

// Signed requests (fixed test keys), path style, 5 MiB parts, short backoff.
S3Options s3_test_options(const std::string& endpoint = s3_test_server().endpoint);
// One file system per process (S3FileSystem is thread-safe).
std::shared_ptr<S3FileSystem> s3_test_file_system();
// "s3://dcpp-test/<local path without its leading '/'>": a unique prefix per test directory.
std::string s3_test_path(const std::string& local);

}  // namespace dcpp::testing

#define DCPP_REQUIRE_S3()                                                                        \
  do {                                                                                          \
    if (!::dcpp::testing::s3_test_server().unavailable.empty())                                 \
      GTEST_SKIP() << "no S3 server: " << ::dcpp::testing::s3_test_server().unavailable;        \
  } while (0)
