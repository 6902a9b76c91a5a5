// The state dict the SIGKILL test's child saves: kKillTensors float32
// tensors of kKillRows × kKillCols (about 200 MB in all), sharded by rows
// over kKillWorld thread ranks, element i of tensor k of generation g equal
// to kill_test_value(g, k, i): an integer below 2^24, so exact in float32,
// and different in every element for different generations.
#pragma once

#include <cstdint>
#include <string>

namespace dcpp::testing {

inline constexpr int kKillWorld = 2;
inline constexpr int kKillTensors = 4;
inline constexpr int64_t kKillRows = 12800;
inline constexpr int64_t kKillCols = 1024;

inline float kill_test_value(uint32_t generation, int key, uint64_t element) {
  const uint64_t v = element * 2654435761ull + uint64_t{generation} * 7919 + static_cast<uint64_t>(key) * 104729;
  return static_cast<float>(v & 0xFFFFFF);
}

inline std::string kill_test_key(int key) { return "layer" + std::to_string(key) + ".weight"; }

}  // namespace dcpp::testing
