// DeviceMesh, chunk math and DTensor on the thread backend.
#include <gtest/gtest.h>

#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dtensor/dtensor_cases.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using testing::for_each_world_size;

struct ExtentRow {
  int64_t size, n;
  std::vector<int64_t> lengths, offsets;
};

TEST(dtensor_ChunkMath, LiteralTables) {
  // docs/design.md §2: c = ceil(S/n); an empty shard's offset is S.
  const ExtentRow rows[] = {
      {10, 3, {4, 4, 2}, {0, 4, 8}},
      {1, 2, {1, 0}, {0, 1}},
      {5, 4, {2, 2, 1, 0}, {0, 2, 4, 5}},
      {4, 4, {1, 1, 1, 1}, {0, 1, 2, 3}},
      {0, 3, {0, 0, 0}, {0, 0, 0}},
      {7, 1, {7}, {0}},
      {15, 4, {4, 4, 4, 3}, {0, 4, 8, 12}},
      {1, 4, {1, 0, 0, 0}, {0, 1, 1, 1}},
      {10, 4, {3, 3, 3, 1}, {0, 3, 6, 9}},
      {6, 5, {2, 2, 2, 0, 0}, {0, 2, 4, 6, 6}},
  };
  for (const auto& row : rows)
    for (int64_t i = 0; i < row.n; ++i) {
      ChunkExtent e = shard_extent(row.size, row.n, i);
      EXPECT_EQ(e.length, row.lengths[i]) << row.size << " over " << row.n << " chunk " << i;
      EXPECT_EQ(e.offset, row.offsets[i]) << row.size << " over " << row.n << " chunk " << i;
    }
  EXPECT_THROW(shard_extent(5, 0, 0), Error);
  EXPECT_THROW(shard_extent(5, 2, 2), Error);
}

struct ChunkRow {
  std::vector<int64_t> coord;
  Shape local, offset;
};

TEST(dtensor_ChunkMath, NestedShardSubdividesTheLocalExtent) {
  // [10, 6] on a 2×2 mesh with Shard(0), Shard(0): 10 → 5,5 → 3,2 each.
  const ChunkRow nested[] = {
      {{0, 0}, {3, 6}, {0, 0}}, {{0, 1}, {2, 6}, {3, 0}}, {{1, 0}, {3, 6}, {5, 0}}, {{1, 1}, {2, 6}, {8, 0}}};
  for (const auto& row : nested) {
    LocalChunk c = compute_local_shape_and_global_offset({10, 6}, {2, 2}, row.coord, {Shard{0}, Shard{0}});
    EXPECT_EQ(c.local_shape, row.local);
    EXPECT_EQ(c.global_offset, row.offset);
  }
  // [5] on a 2×3 mesh with Shard(0), Shard(-1): 5 → 3,2 → (1,1,1), (1,1,0); the empty one sits at 5.
  const ChunkRow uneven[] = {{{0, 0}, {1}, {0}}, {{0, 1}, {1}, {1}}, {{0, 2}, {1}, {2}},
                             {{1, 0}, {1}, {3}}, {{1, 1}, {1}, {4}}, {{1, 2}, {0}, {5}}};
  for (const auto& row : uneven) {
    LocalChunk c = compute_local_shape_and_global_offset({5}, {2, 3}, row.coord, {Shard{0}, Shard{-1}});
    EXPECT_EQ(c.local_shape, row.local);
    EXPECT_EQ(c.global_offset, row.offset);
  }
  // Different dims on the two mesh dims; Replicate and Partial own everything.
  LocalChunk c = compute_local_shape_and_global_offset({4, 9}, {2, 2}, {1, 1}, {Shard{1}, Shard{0}});
  EXPECT_EQ(c.local_shape, (Shape{2, 4}));
  EXPECT_EQ(c.global_offset, (Shape{2, 5}));
  c = compute_local_shape_and_global_offset({4, 9}, {2, 2}, {1, 0}, {Replicate{}, Partial{}});
  EXPECT_EQ(c.local_shape, (Shape{4, 9}));
  EXPECT_EQ(c.global_offset, (Shape{0, 0}));
  EXPECT_THROW(compute_local_shape_and_global_offset({4}, {2}, {0}, {Shard{1}}), Error);
  EXPECT_THROW(compute_local_shape_and_global_offset({4}, {2}, {0}, {Shard{0}, Shard{0}}), Error);
}

TEST(dtensor_ChunkMath, PlacementNames) {
  EXPECT_EQ(placement_to_string(Shard{1}), "Shard(1)");
  EXPECT_EQ(placement_to_string(Replicate{}), "Replicate()");
  EXPECT_EQ(placement_to_string(Partial{}), "Partial(sum)");
}

TEST(dtensor_DeviceMesh, OneAndTwoDimensional) {
  for_each_world_size({1, 2, 3, 4, 5, 6}, [](CommPtr world) { testing::device_mesh_case(world); });
}

TEST(dtensor_DTensor, GlobalOffsetsFiveOverFour) {
  run_ranks(4, [](CommPtr world) {
    DeviceMesh mesh = init_device_mesh(world, "cpu", {4});
    Tensor full = Tensor::arange(5, DType::kInt64);
    DTensor d = distribute_tensor(full, mesh, {Shard{0}});
    const int64_t lengths[] = {2, 2, 1, 0}, offsets[] = {0, 2, 4, 5};
    EXPECT_EQ(d.to_local().shape(), (Shape{lengths[world->rank()]}));
    EXPECT_EQ(d.global_offset(), (Shape{offsets[world->rank()]}));
    if (lengths[world->rank()] > 0) EXPECT_EQ(d.to_local().at({0}), static_cast<double>(offsets[world->rank()]));
  });
}

TEST(dtensor_DTensor, RoundTripEveryPlacement) {
  const uint64_t seed = testing::test_seed("DTensor.RoundTripEveryPlacement");
  for_each_world_size({1, 2, 3, 4, 5, 6}, [seed](CommPtr world) { testing::roundtrip_case(world, seed); });
}

TEST(dtensor_DTensor, FromLocal) {
  const uint64_t seed = testing::test_seed("DTensor.FromLocal");
  for_each_world_size({1, 2, 3, 4, 5}, [seed](CommPtr world) { testing::from_local_case(world, seed); });
}

}  // namespace
}  // namespace dcpp
