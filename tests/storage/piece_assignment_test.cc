// The read-once assignment as a pure function: literal tables worked out by
// hand, and properties over random needs.
#include "storage/fs/piece_assignment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "support/distributed.h"

namespace dcpp::fs_detail {
namespace {

std::string describe(const std::vector<Piece>& pieces) {
  std::string s;
  for (const Piece& p : pieces) {
    s += "{item " + std::to_string(p.item) + ", blocks " + std::to_string(p.first) + ".." + std::to_string(p.last) +
         ", owner " + std::to_string(p.owner) + ", remote";
    for (int r : p.remote) s += " " + std::to_string(r);
    s += "}\n";
  }
  return s;
}

void expect_pieces(const std::vector<Piece>& got, const std::vector<Piece>& want) {
  EXPECT_EQ(got, want) << "got:\n" << describe(got) << "want:\n" << describe(want);
}

// Block size 4 bytes in every table below.
constexpr PieceSizes kSizes{.block_size = 4, .max_read_bytes = 8, .share_piece_bytes = 4};

TEST(storage_PieceAssignment, OneRankReadsItsBlocksInMaxReadPieces) {
  // 38 bytes: blocks 0..9, the last one 2 bytes. Pieces of 2 blocks.
  std::vector<ItemNeeds> items{{38, true, {{0, 0, 9}}}};
  expect_pieces(assign_pieces(items, 1, kSizes),
                {{0, 0, 1, 0, {}}, {0, 2, 3, 0, {}}, {0, 4, 5, 0, {}}, {0, 6, 7, 0, {}}, {0, 8, 9, 0, {}}});
}

TEST(storage_PieceAssignment, OverlapIsSharedAfterPrivateLoadsAreCounted) {
  // Rank 0 needs blocks 0..5, rank 1 blocks 4..9: 0..3 are rank 0's alone
  // (16 bytes), 6..9 rank 1's alone (16 bytes); 4 and 5 are shared, one
  // block per piece. Block 4: loads 16/16, tie to rank 0 (now 20); block 5:
  // rank 1 has fewer (16).
  std::vector<ItemNeeds> items{{40, true, {{0, 0, 5}, {1, 4, 9}}}};
  expect_pieces(assign_pieces(items, 2, kSizes), {{0, 0, 1, 0, {}},
                                                  {0, 2, 3, 0, {}},
                                                  {0, 4, 4, 0, {1}},
                                                  {0, 5, 5, 1, {0}},
                                                  {0, 6, 7, 1, {}},
                                                  {0, 8, 9, 1, {}}});
}

TEST(storage_PieceAssignment, UnsplittableItemIsOnePieceForAllItsNeeders) {
  // Item 0 cuts elements at block boundaries: ranks 0 and 2 need blocks 1..2
  // and 4 of it, so blocks 1..4 are one piece needed by both. Item 1 is rank
  // 0's alone: 16 bytes, counted first, so the shared piece goes to rank 2.
  std::vector<ItemNeeds> items{{22, false, {{0, 1, 2}, {2, 4, 4}}}, {16, true, {{0, 0, 3}}}};
  expect_pieces(assign_pieces(items, 3, kSizes), {{0, 1, 4, 2, {0}}, {1, 0, 1, 0, {}}, {1, 2, 3, 0, {}}});
}

TEST(storage_PieceAssignment, SharedPiecesGoRoundTheNeeders) {
  // Three ranks need all of a 38-byte item; shared pieces of 2 blocks
  // (8, 8, 8, 8, 6 bytes): loads go 8/0/0, 8/8/0, 8/8/8, 16/8/8, 16/14/8.
  PieceSizes sizes = kSizes;
  sizes.share_piece_bytes = 8;
  std::vector<ItemNeeds> items{{38, true, {{0, 0, 9}, {1, 0, 9}, {2, 0, 9}}}};
  expect_pieces(assign_pieces(items, 3, sizes), {{0, 0, 1, 0, {1, 2}},
                                                 {0, 2, 3, 1, {0, 2}},
                                                 {0, 4, 5, 2, {0, 1}},
                                                 {0, 6, 7, 0, {1, 2}},
                                                 {0, 8, 9, 1, {0, 2}}});
}

TEST(storage_PieceAssignment, AdjacentSegmentsWithTheSameNeedersMerge) {
  // Rank 0 sends its blocks as two adjacent ranges; together with rank 1's
  // they are one segment, cut into one 16-byte shared piece.
  PieceSizes sizes = kSizes;
  sizes.share_piece_bytes = 16;
  std::vector<ItemNeeds> items{{16, true, {{0, 0, 1}, {0, 2, 3}, {1, 0, 3}}}};
  expect_pieces(assign_pieces(items, 2, sizes), {{0, 0, 3, 0, {1}}});
}

TEST(storage_PieceAssignment, BlocksNobodyNeedsAreNotRead) {
  std::vector<ItemNeeds> items{{40, true, {{0, 0, 1}, {1, 7, 8}}}, {8, true, {}}};
  expect_pieces(assign_pieces(items, 2, kSizes), {{0, 0, 1, 0, {}}, {0, 7, 8, 1, {}}});
}

TEST(storage_PieceAssignment, TiesGoToTheFirstNeederFromTheFirstChoice) {
  // Three ranks need all of a 16-byte item, one block per piece; with rank 2
  // as first choice the equal loads are broken 2, 0, 1, then 2 again.
  std::vector<ItemNeeds> items{{16, true, {{0, 0, 3}, {1, 0, 3}, {2, 0, 3}}}};
  expect_pieces(assign_pieces(items, 3, kSizes, 2),
                {{0, 0, 0, 2, {0, 1}}, {0, 1, 1, 0, {1, 2}}, {0, 2, 2, 1, {0, 2}}, {0, 3, 3, 2, {0, 1}}});
  // A first choice that needs nothing: the next needer after it, cyclically.
  std::vector<ItemNeeds> two{{8, true, {{0, 0, 1}, {1, 0, 1}}}};
  expect_pieces(assign_pieces(two, 3, kSizes, 2), {{0, 0, 0, 0, {1}}, {0, 1, 1, 1, {0}}});
}

// ---- properties over random needs ----

struct Case {
  int world = 1;
  PieceSizes sizes;
  std::vector<ItemNeeds> items;
};

Case random_case(std::mt19937_64& rng) {
  auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  Case c;
  c.world = static_cast<int>(pick(1, 5));
  c.sizes.block_size = pick(1, 3) * 4;
  c.sizes.max_read_bytes = c.sizes.block_size * pick(1, 6) + pick(0, 3);
  c.sizes.share_piece_bytes = c.sizes.block_size * pick(1, 4) + pick(0, 3);
  const size_t nitems = pick(1, 5);
  for (size_t i = 0; i < nitems; ++i) {
    ItemNeeds item;
    const uint64_t blocks = pick(1, 40);
    item.byte_length = blocks * c.sizes.block_size - pick(0, c.sizes.block_size - 1);
    item.splittable = pick(0, 3) != 0;
    for (int r = 0; r < c.world; ++r) {
      const uint64_t nranges = item.splittable ? pick(0, 3) : pick(0, 1);
      for (uint64_t k = 0; k < nranges; ++k) {
        const uint64_t f = pick(0, blocks - 1);
        item.ranges.push_back({r, f, pick(f, blocks - 1)});
      }
    }
    std::shuffle(item.ranges.begin(), item.ranges.end(), rng);
    c.items.push_back(std::move(item));
  }
  return c;
}

std::set<int> needers_of(const ItemNeeds& item, uint64_t block) {
  std::set<int> who;
  for (const NeededBlocks& r : item.ranges) {
    if (r.first <= block && block <= r.last) who.insert(r.rank);
  }
  return who;
}

void check_properties(const Case& c, const std::vector<Piece>& pieces) {
  const uint64_t bs = c.sizes.block_size;
  auto bytes = [&](const Piece& p) { return piece_end(p, c.items[p.item].byte_length, bs) - piece_begin(p, bs); };
  for (size_t i = 0; i < c.items.size(); ++i) {
    const ItemNeeds& item = c.items[i];
    std::set<uint64_t> needed;
    std::set<int> any_needer;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const NeededBlocks& r : item.ranges) {
      for (uint64_t b = r.first; b <= r.last; ++b) needed.insert(b);
      any_needer.insert(r.rank);
      lo = std::min(lo, r.first);
      hi = std::max(hi, r.last);
    }
    std::multiset<uint64_t> read;
    for (const Piece& p : pieces) {
      if (p.item != i) continue;
      ASSERT_LE(p.first, p.last);
      for (uint64_t b = p.first; b <= p.last; ++b) read.insert(b);
      std::set<int> who(p.remote.begin(), p.remote.end());
      EXPECT_EQ(who.size(), p.remote.size()) << "a rank receives a piece twice";
      EXPECT_FALSE(who.count(p.owner)) << "the owner also receives its own piece";
      who.insert(p.owner);
      if (item.splittable) {
        for (uint64_t b = p.first; b <= p.last; ++b) {
          EXPECT_EQ(who, needers_of(item, b)) << "item " << i << " block " << b;
        }
        const uint64_t cap = who.size() == 1 ? c.sizes.max_read_bytes : c.sizes.share_piece_bytes;
        EXPECT_LE(p.last - p.first + 1, std::max<uint64_t>(1, cap / bs)) << "item " << i;
      } else {
        EXPECT_EQ(who, any_needer) << "item " << i;
        EXPECT_EQ(p.first, lo);
        EXPECT_EQ(p.last, hi);
      }
    }
    if (item.splittable) {
      // Every needed block read once; nothing else read.
      EXPECT_EQ(std::set<uint64_t>(read.begin(), read.end()), needed) << "item " << i;
      EXPECT_EQ(read.size(), needed.size()) << "item " << i << ": a block is read twice";
    } else if (!item.ranges.empty()) {
      EXPECT_EQ(read.size(), hi - lo + 1) << "item " << i;
    } else {
      EXPECT_TRUE(read.empty());
    }
  }
  // Balance: the greedy gave each rank its last shared piece when it had no
  // more bytes than any other needer of it, so it ends at most that piece
  // above every one of them.
  std::vector<uint64_t> load(static_cast<size_t>(c.world), 0);
  std::vector<const Piece*> last_shared(static_cast<size_t>(c.world), nullptr);
  for (const Piece& p : pieces) {
    ASSERT_GE(p.owner, 0);
    ASSERT_LT(p.owner, c.world);
    load[static_cast<size_t>(p.owner)] += bytes(p);
    if (!p.remote.empty()) last_shared[static_cast<size_t>(p.owner)] = &p;
  }
  for (int o = 0; o < c.world; ++o) {
    const Piece* q = last_shared[static_cast<size_t>(o)];
    if (!q) continue;
    for (int r : q->remote) {
      EXPECT_LE(load[static_cast<size_t>(o)], load[static_cast<size_t>(r)] + bytes(*q))
          << "rank " << o << " holds " << load[static_cast<size_t>(o)] << " bytes, rank " << r << " "
          << load[static_cast<size_t>(r)];
    }
  }
}

TEST(storage_PieceAssignment, RandomNeedsAreReadOnceBalancedAndDeterministic) {
  std::mt19937_64 rng(testing::test_seed("storage_PieceAssignment.Random"));
  for (int n = 0; n < 300; ++n) {
    Case c = random_case(rng);
    SCOPED_TRACE("case " + std::to_string(n) + ", world " + std::to_string(c.world));
    const std::vector<Piece> pieces = assign_pieces(c.items, c.world, c.sizes);
    check_properties(c, pieces);
    // Any first choice keeps every property (the read engine's homes use their own rank).
    check_properties(c, assign_pieces(c.items, c.world, c.sizes, static_cast<int>(rng() % c.world)));
    if (::testing::Test::HasFailure()) return;
    // Every rank computes the same answer, whatever order the ranges of an
    // item arrived in and on whichever thread.
    Case shuffled = c;
    for (ItemNeeds& item : shuffled.items) std::shuffle(item.ranges.begin(), item.ranges.end(), rng);
    EXPECT_EQ(assign_pieces(shuffled.items, c.world, c.sizes), pieces);
    std::vector<std::vector<Piece>> per_rank(static_cast<size_t>(c.world));
    std::vector<std::thread> threads;
    for (int r = 0; r < c.world; ++r) {
      threads.emplace_back([&, r] { per_rank[static_cast<size_t>(r)] = assign_pieces(c.items, c.world, c.sizes); });
    }
    for (auto& t : threads) t.join();
    for (const auto& got : per_rank) EXPECT_EQ(got, pieces);
  }
}

}  // namespace
}  // namespace dcpp::fs_detail
