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

// copy_box_range against an element-by-element copy: random boxes inside
// random chunks (strided source), into a contiguous buffer and into a box of
// a larger buffer (strided destination), for random linear ranges.
TEST(storage_BoxMath, CopyBoxRangeCopiesExactlyTheRangesElements) {
  const uint64_t seed = testing::test_seed("storage_BoxMath.CopyBoxRangeCopiesExactlyTheRangesElements");
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 400; ++trial) {
    const size_t nd = rng() % 4;  // 0: a scalar
    Shape chunk(nd), off(nd), len(nd), outer(nd), outer_off(nd);
    for (size_t d = 0; d < nd; ++d) {
      chunk[d] = 1 + static_cast<int64_t>(rng() % 7);
      off[d] = static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk[d]));
      len[d] = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(chunk[d] - off[d]));
      outer[d] = len[d] + static_cast<int64_t>(rng() % 3);
      outer_off[d] = static_cast<int64_t>(rng() % static_cast<uint64_t>(outer[d] - len[d] + 1));
    }
    const uint64_t elem = uint64_t{1} << (rng() % 4);
    auto numel = [](const Shape& s) {
      uint64_t n = 1;
      for (int64_t v : s) n *= static_cast<uint64_t>(v);
      return n;
    };
    auto strides = [&](const Shape& s) {
      Shape st(s.size(), 1);
      for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
      return st;
    };
    const Shape cst = strides(chunk), bst = strides(len), ost = strides(outer);
    std::vector<std::byte> src(numel(chunk) * elem);
    for (auto& b : src) b = static_cast<std::byte>(rng());
    auto pos = [&](uint64_t l, const Shape& origin, const Shape& st) {  // element offset of box element l
      uint64_t p = 0;
      for (size_t d = nd; d-- > 0;) {
        const uint64_t n = static_cast<uint64_t>(len[d]);
        p += (static_cast<uint64_t>(origin[d]) + l % n) * static_cast<uint64_t>(st[d]);
        l /= n;
      }
      return p;
    };
    const uint64_t total = numel(len);
    const uint64_t l0 = rng() % (total + 1);
    const uint64_t l1 = l0 + rng() % (total - l0 + 1);
    // The window starts at some byte at or before element l0's.
    const uint64_t first = l0 < total ? pos(l0, off, cst) * elem : 0;
    const uint64_t a = first - std::min<uint64_t>(first, rng() % 3 * elem);
    const int64_t src_origin = static_cast<int64_t>(pos(0, off, cst) * elem) - static_cast<int64_t>(a);
    // Into a contiguous buffer holding [l0, l1).
    std::vector<std::byte> packed((l1 - l0) * elem + 1, std::byte{0xAB}), want_packed = packed;
    copy_box_range(len, l0, l1, src.data() + a, src_origin, cst, packed.data(), -static_cast<int64_t>(l0 * elem), bst,
                   elem);
    // Into a box of a larger buffer.
    std::vector<std::byte> big(numel(outer) * elem, std::byte{0xCD}), want_big = big;
    const int64_t big_origin = static_cast<int64_t>(pos(0, outer_off, ost) * elem);
    copy_box_range(len, l0, l1, src.data() + a, src_origin, cst, big.data(), big_origin, ost, elem);
    // Into a column-major buffer (the last dim strided).
    Shape fst(nd, 1);
    for (size_t d = 1; d < nd; ++d) fst[d] = fst[d - 1] * outer[d - 1];
    std::vector<std::byte> col(numel(outer) * elem, std::byte{0xEF}), want_col = col;
    const int64_t col_origin = static_cast<int64_t>(pos(0, outer_off, fst) * elem);
    copy_box_range(len, l0, l1, src.data() + a, src_origin, cst, col.data(), col_origin, fst, elem);
    for (uint64_t l = l0; l < l1; ++l) {
      for (uint64_t k = 0; k < elem; ++k) {
        want_packed[(l - l0) * elem + k] = src[pos(l, off, cst) * elem + k];
        want_big[pos(l, outer_off, ost) * elem + k] = src[pos(l, off, cst) * elem + k];
        want_col[pos(l, outer_off, fst) * elem + k] = src[pos(l, off, cst) * elem + k];
      }
    }
    EXPECT_EQ(col, want_col) << "trial " << trial << " box " << shape_to_string(len) << " column-major";
    EXPECT_EQ(packed, want_packed) << "trial " << trial << " box " << shape_to_string(len) << " [" << l0 << ", " << l1
                                   << ")";
    EXPECT_EQ(big, want_big) << "trial " << trial << " box " << shape_to_string(len) << " in "
                             << shape_to_string(outer);
  }
}

}  // namespace
}  // namespace dcpp::fs_detail
