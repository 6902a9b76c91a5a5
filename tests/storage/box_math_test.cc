// BoxInChunk::touched_blocks against the blocks of every element, computed
// one element at a time.
#include "storage/fs/box_math.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "support/distributed.h"

namespace dcpp::fs_detail {
namespace {

// The blocks holding some byte of some element of the box, merged into ranges.
std::vector<std::pair<uint64_t, uint64_t>> blocks_by_element(const Shape& chunk, const Shape& off, const Shape& len,
                                                              uint64_t elem, uint64_t block) {
  std::set<uint64_t> blocks;
  const size_t nd = chunk.size();
  Shape idx(nd, 0);
  uint64_t numel = 1;
  for (int64_t n : len) numel *= static_cast<uint64_t>(n);
  for (uint64_t l = 0; l < numel; ++l) {
    uint64_t rest = l, pos = 0, stride = 1;
    for (size_t d = nd; d-- > 0;) {
      const uint64_t i = rest % static_cast<uint64_t>(len[d]);
      rest /= static_cast<uint64_t>(len[d]);
      pos += (static_cast<uint64_t>(off[d]) + i) * stride;
      stride *= static_cast<uint64_t>(chunk[d]);
    }
    for (uint64_t b = pos * elem; b < pos * elem + elem; ++b) blocks.insert(b / block);
  }
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint64_t b : blocks) {
    if (!out.empty() && out.back().second + 1 == b) {
      out.back().second = b;
    } else {
      out.push_back({b, b});
    }
  }
  return out;
}

TEST(storage_BoxMath, TouchedBlocksAreTheBlocksOfTheElements) {
  const uint64_t seed = testing::test_seed("storage_BoxMath.TouchedBlocksAreTheBlocksOfTheElements");
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 400; ++trial) {
    const size_t nd = 1 + rng() % 3;
    Shape chunk(nd), off(nd), len(nd);
    for (size_t d = 0; d < nd; ++d) {
      chunk[d] = 1 + static_cast<int64_t>(rng() % 12);
      off[d] = static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk[d]));
      len[d] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk[d] - off[d]));
    }
    const uint64_t elem = uint64_t{1} << (rng() % 4);
    const uint64_t block = 1 + rng() % 64;  // blocks smaller and larger than a row
    BoxInChunk box(chunk, off, len, elem);
    EXPECT_EQ(box.touched_blocks(block), blocks_by_element(chunk, off, len, elem, block))
        << "trial " << trial << " chunk " << shape_to_string(chunk) << " box " << shape_to_string(off) << "+"
        << shape_to_string(len) << " elem " << elem << " block " << block;
  }
}

}  // namespace
}  // namespace dcpp::fs_detail
