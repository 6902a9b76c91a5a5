// DCPP_REQUIRE_GPU(): the first line of every GPU test. Where this process
// sees no CUDA device it skips the test with the reason (the build has no
// CUDA, or what the CUDA runtime said), so ctest lists it as skipped, never
// as passed; scripts/device-check.sh fails on any such skip.
#pragma once

#include <gtest/gtest.h>

#include "tensor/cuda/runtime.h"

#define DCPP_REQUIRE_GPU()                                                                              \
  do {                                                                                                  \
    if (::dcpp::cuda::device_count() == 0) {                                                            \
      GTEST_SKIP() << "no CUDA GPU present (" << ::dcpp::cuda::unavailable_reason()                     \
                   << "): the device path is checked by scripts/device-check.sh on a GPU machine";      \
    }                                                                                                   \
  } while (0)
