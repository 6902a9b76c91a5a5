// The read-once assignment as the ranks carry it out — needs sent to each
// item's home, assigned there, pieces sent to their owners — run by hand
// without a communicator on 1 to 8 ranks, against a brute-force reference:
// every block any rank needs is read by exactly one rank that needs it and
// delivered to every other rank that needs it, and each owner holds exactly
// the boxes of the ranks it reads for.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "storage/fs/read_delivery.h"
#include "support/distributed.h"

namespace dcpp::fs_detail {
namespace {

struct World {
  Metadata md;
  std::vector<std::vector<BoxRead>> reads;  // by rank
  std::vector<ReadPlan> plans;
};

// Tensors of [rows, cols] saved in row chunks; each rank reads random boxes of random chunks.
void make_world(World& w, std::mt19937_64& rng, int world, uint64_t block_size) {
  auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  const int tensors = static_cast<int>(pick(1, 4));
  for (int t = 0; t < tensors; ++t) {
    TensorMeta tm;
    tm.dtype = pick(0, 1) ? DType::kFloat32 : DType::kBFloat16;
    const int64_t rows = static_cast<int64_t>(pick(1, 12)), cols = static_cast<int64_t>(pick(1, 20));
    tm.global_shape = {rows, cols};
    for (int64_t r0 = 0; r0 < rows;) {
      const int64_t n = std::min<int64_t>(rows - r0, static_cast<int64_t>(pick(1, 5)));
      ChunkMeta c{{r0, 0}, {n, cols}, {"data-0", 0, static_cast<uint64_t>(n * cols) * dtype_size(tm.dtype), {}, {}, std::nullopt}};
      c.location.block_checksums.resize((c.location.byte_length + block_size - 1) / block_size);
      tm.chunks.push_back(std::move(c));
      r0 += n;
    }
    w.md.tensors["t" + std::to_string(t)] = std::move(tm);
  }
  w.reads.resize(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    const uint64_t nboxes = pick(0, 6);
    for (uint64_t b = 0; b < nboxes; ++b) {
      auto it = std::next(w.md.tensors.begin(), static_cast<long>(pick(0, w.md.tensors.size() - 1)));
      const size_t ci = pick(0, it->second.chunks.size() - 1);
      const ChunkMeta& c = it->second.chunks[ci];
      BoxRead read;
      read.key = it->first;
      read.chunk_index = ci;
      read.location = &c.location;
      read.dtype = it->second.dtype;
      read.chunk_sizes = c.sizes;
      for (size_t d = 0; d < 2; ++d) {
        const int64_t o = static_cast<int64_t>(pick(0, static_cast<uint64_t>(c.sizes[d] - 1)));
        read.box_offsets.push_back(o);
        read.box_lengths.push_back(static_cast<int64_t>(pick(1, static_cast<uint64_t>(c.sizes[d] - o))));
      }
      w.reads[static_cast<size_t>(r)].push_back(std::move(read));
    }
  }
  for (int r = 0; r < world; ++r) {
    w.plans.emplace_back(block_size);
    w.plans.back().add_local(w.reads[static_cast<size_t>(r)]);
  }
}

TEST(storage_ReadAssignment, HomesAssignEveryNeededBlockOnceAndOwnersGetTheBoxes) {
  std::mt19937_64 rng(testing::test_seed("storage_ReadAssignment.Homes"));
  for (int n = 0; n < 200; ++n) {
    const int world = std::vector<int>{1, 2, 3, 5, 8}[static_cast<size_t>(n % 5)];
    const uint64_t block_size = std::vector<uint64_t>{8, 16, 24, 6}[rng() % 4];  // 6: blocks cut float32s
    PieceSizes sizes{block_size, block_size * (1 + rng() % 3), block_size * (1 + rng() % 2)};
    World w;
    make_world(w, rng, world, block_size);
    SCOPED_TRACE("case " + std::to_string(n) + ", world " + std::to_string(world) + ", block " +
                 std::to_string(block_size));
    const ChunkIds ids(w.md);
    // 1. needs to homes.
    std::vector<std::vector<Blob>> to_home(static_cast<size_t>(world));  // [from][home]
    for (int r = 0; r < world; ++r) {
      std::vector<WireWriter> out(static_cast<size_t>(world));
      write_needs(out, w.plans[static_cast<size_t>(r)], ids);
      for (auto& o : out) to_home[static_cast<size_t>(r)].push_back(o.take());
    }
    // 2. homes assign.
    std::vector<std::vector<Blob>> to_owner(static_cast<size_t>(world));  // [home][owner]
    for (int h = 0; h < world; ++h) {
      HomeItems home;
      for (int r = 0; r < world; ++r) {
        const Blob& b = to_home[static_cast<size_t>(r)][static_cast<size_t>(h)];
        WireReader rd(b, r);
        home.read(rd, r, b);
      }
      std::vector<WireWriter> out(static_cast<size_t>(world));
      home.assign(out, ids, h, world, block_size, sizes);
      for (auto& o : out) to_owner[static_cast<size_t>(h)].push_back(o.take());
    }
    // 3. owners learn their pieces.
    for (int r = 0; r < world; ++r) {
      for (int h = 0; h < world; ++h) {
        WireReader rd(to_owner[static_cast<size_t>(h)][static_cast<size_t>(r)], h);
        read_assignment(rd, h, w.plans[static_cast<size_t>(r)], ids, r);
        EXPECT_TRUE(rd.done());
      }
    }

    // The reference: who needs each block of each (key, chunk), from the boxes themselves.
    std::map<std::pair<std::string, size_t>, std::map<uint64_t, std::set<int>>> needers;
    std::map<std::pair<std::string, size_t>, std::map<int, std::multiset<std::pair<uint64_t, Shape>>>> boxes;
    for (int r = 0; r < world; ++r) {
      const auto& reads = w.reads[static_cast<size_t>(r)];
      for (size_t t = 0; t < reads.size(); ++t) {
        const BoxRead& br = reads[t];
        BoxInChunk geom(br.chunk_sizes, br.box_offsets, br.box_lengths, dtype_size(br.dtype));
        for (const auto& [f, l] : geom.touched_blocks(block_size)) {
          for (uint64_t b = f; b <= l; ++b) needers[{br.key, br.chunk_index}][b].insert(r);
        }
        Shape box = br.box_offsets;
        box.insert(box.end(), br.box_lengths.begin(), br.box_lengths.end());
        boxes[{br.key, br.chunk_index}][r].insert({t, box});
      }
    }
    // Every piece of every rank, by block.
    std::map<std::pair<std::string, size_t>, std::map<uint64_t, std::vector<std::pair<int, std::set<int>>>>> read_by;
    for (int r = 0; r < world; ++r) {
      const ReadPlan& plan = w.plans[static_cast<size_t>(r)];
      for (const Piece& p : plan.pieces) {
        const Item& item = plan.items[p.item];
        EXPECT_EQ(p.owner, r);
        const ChunkIds::Chunk c = ids.chunk(item.chunk_id, r);
        EXPECT_EQ(*c.key, item.key);
        EXPECT_EQ(c.chunk_index, item.chunk_index);
        for (uint64_t b = p.first; b <= p.last; ++b) {
          read_by[{item.key, item.chunk_index}][b].push_back({r, std::set<int>(p.remote.begin(), p.remote.end())});
        }
        // The owner holds each receiver's boxes of the item, exactly.
        for (int q : p.remote) {
          std::multiset<std::pair<uint64_t, Shape>> got;
          for (const Item::RemoteBox& rb : item.remote_boxes) {
            if (rb.rank == q) {
              const BoxRead& br = w.reads[static_cast<size_t>(q)][rb.target];
              Shape box = br.box_offsets;
              box.insert(box.end(), br.box_lengths.begin(), br.box_lengths.end());
              got.insert({rb.target, box});
              EXPECT_EQ(rb.geom.numel(), static_cast<uint64_t>(br.box_lengths[0] * br.box_lengths[1]));
            }
          }
          EXPECT_EQ(got, (boxes[{item.key, item.chunk_index}][q])) << item.key << " for rank " << q;
        }
      }
    }
    for (const auto& [chunk, blocks] : needers) {
      const bool splittable = block_size % dtype_size(w.md.tensors.at(chunk.first).dtype) == 0;
      std::set<int> all;
      for (const auto& [b, who] : blocks) all.insert(who.begin(), who.end());
      for (const auto& [b, who] : blocks) {
        const auto& readers = read_by[chunk][b];
        ASSERT_EQ(readers.size(), 1u) << chunk.first << " chunk " << chunk.second << " block " << b;
        std::set<int> got = readers.front().second;
        EXPECT_TRUE(got.insert(readers.front().first).second) << "the owner receives its own piece";
        EXPECT_EQ(got, splittable ? who : all) << chunk.first << " chunk " << chunk.second << " block " << b;
      }
    }
    // Nothing read that nobody needs (an unsplittable item's gaps aside).
    for (const auto& [chunk, blocks] : read_by) {
      const bool splittable = block_size % dtype_size(w.md.tensors.at(chunk.first).dtype) == 0;
      if (!splittable) continue;
      for (const auto& [b, readers] : blocks) EXPECT_TRUE(needers[chunk].count(b)) << chunk.first << " block " << b;
    }
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace dcpp::fs_detail
