// expect_error(f, code): runs f, expects it to throw a dcpp::Error with
// `code`, and returns the error so the test can check its message.
#pragma once

#include <gtest/gtest.h>

#include "dcpp/error.h"

namespace dcpp::testing {

template <typename F>
Error expect_error(F&& f, ErrorCode code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected an Error with code " << error_code_name(code);
  return Error(ErrorCode::kInternal, "no error");
}

}  // namespace dcpp::testing
