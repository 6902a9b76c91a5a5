// Device tensors in save and load before the staging is wired in: both
// refuse them with an error naming the key and the device, and touch
// nothing. Skips, visibly, without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "support/distributed.h"
#include "support/gpu.h"

namespace dcpp {
namespace {

using testing::TempDir;

TEST(checkpoint_Cuda, DeviceTensorsAreRefusedNamingKeyAndDevice) {
  DCPP_REQUIRE_GPU();
  TempDir tmp;
  try {
    save(StateDict{{"w", Tensor::zeros({3, 4}, DType::kFloat32, Device::kCuda)}}, tmp.path());
    ADD_FAILURE() << "saved a device tensor";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_NE(e.message().find("'w' is in the memory of cuda:0"), std::string::npos) << e.message();
  }
  save(StateDict{{"w", Tensor::full({3, 4}, 2.0)}}, tmp.path());
  StateDict target{{"w", Tensor::zeros({3, 4}, DType::kFloat32, Device::kCuda)}};
  try {
    load(target, tmp.path());
    ADD_FAILURE() << "loaded into a device tensor";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("w is in the memory of cuda:0"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(equal(target.at("w").as<Tensor>(), Tensor::zeros({3, 4})));
}

}  // namespace
}  // namespace dcpp
