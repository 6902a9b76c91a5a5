#include "dcpp/chunk_coverage.h"

#include <algorithm>
#include <numeric>

#include "dcpp/error.h"

namespace dcpp {

namespace {

std::string describe(const std::string& key, const ChunkBox& c) {
  return "chunk of '" + key + "' at offsets " + shape_to_string(c.offsets) + " with sizes " +
         shape_to_string(c.sizes) + " (rank " + std::to_string(c.rank) + ")";
}

uint64_t saturating_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}

}  // namespace

// Why this is O(n log n) for every layout DTensor placements produce, and
// exact for any layout:
//
// The cut points of dimension d are the distinct chunk starts and ends along
// d (plus 0 and S_d); they split the global box into a grid of cells, and
// every chunk is exactly a union of cells (its own faces are cuts). Chunks
// overlap iff some cell belongs to two of them; so we list, per chunk, the
// cells it spans (binary search of its start and end among the cuts), sort
// the cell tuples and look for equal neighbours. Once the chunks are known
// not to overlap and to lie in bounds, they cover the tensor iff their
// volumes sum to numel (disjoint boxes inside a box of volume V with total
// volume V leave no gap).
//
// The cost is the number of (chunk, cell) pairs. A DTensor's chunks are the
// products of one partition of [0, S_d) per tensor dimension (a Shard splits
// a dimension into consecutive intervals, a second Shard of the same
// dimension subdivides each of them, Replicate keeps it whole), so the cuts
// of dimension d are exactly the interval ends of that partition and each
// chunk is a single cell: n chunks → n tuples → O(n d log n). A custom
// layout whose chunks span several cells costs those cells; if the count
// ever exceeds the number of grid cells, two chunks must share a cell
// (pigeonhole), so the walk stops there and reports the overlap.
void validate_chunk_tiling(const std::string& key, const Shape& global_shape, const std::vector<ChunkBox>& all) {
  const size_t ndim = global_shape.size();
  std::vector<const ChunkBox*> chunks;
  chunks.reserve(all.size());
  for (const auto& c : all) {
    if (c.offsets.size() != ndim || c.sizes.size() != ndim) {
      throw Error(ErrorCode::kInvalidArgument, describe(key, c) + " has " + std::to_string(c.sizes.size()) +
                                                   " dims but the tensor has shape " +
                                                   shape_to_string(global_shape));
    }
    bool empty = false;
    for (size_t d = 0; d < ndim; ++d) {
      if (c.offsets[d] < 0 || c.sizes[d] < 0 || c.offsets[d] > global_shape[d] ||
          c.sizes[d] > global_shape[d] - c.offsets[d]) {
        throw Error(ErrorCode::kInvalidArgument,
                    describe(key, c) + " lies outside the global shape " + shape_to_string(global_shape));
      }
      if (c.sizes[d] == 0) empty = true;
    }
    if (!empty) chunks.push_back(&c);
  }
  const int64_t numel = shape_numel(global_shape);

  // Cut points per dimension.
  std::vector<std::vector<int64_t>> cuts(ndim);
  uint64_t grid_cells = 1;
  for (size_t d = 0; d < ndim; ++d) {
    auto& cd = cuts[d];
    cd.reserve(2 * chunks.size() + 2);
    cd.push_back(0);
    cd.push_back(global_shape[d]);
    for (const auto* c : chunks) {
      cd.push_back(c->offsets[d]);
      cd.push_back(c->offsets[d] + c->sizes[d]);
    }
    std::sort(cd.begin(), cd.end());
    cd.erase(std::unique(cd.begin(), cd.end()), cd.end());
    grid_cells = saturating_mul(grid_cells, cd.size() - 1);
  }

  // Cell tuples, ndim entries each, tagged with their chunk.
  std::vector<int64_t> cells;
  std::vector<uint32_t> owner;
  bool over = false;  // more (chunk, cell) pairs than cells: an overlap exists
  std::vector<int64_t> lo(ndim), hi(ndim), cur(ndim);
  for (uint32_t i = 0; i < chunks.size() && !over; ++i) {
    const ChunkBox& c = *chunks[i];
    for (size_t d = 0; d < ndim; ++d) {
      const auto& cd = cuts[d];
      lo[d] = std::lower_bound(cd.begin(), cd.end(), c.offsets[d]) - cd.begin();
      hi[d] = std::lower_bound(cd.begin(), cd.end(), c.offsets[d] + c.sizes[d]) - cd.begin();
      cur[d] = lo[d];
    }
    // Odometer over the chunk's cells.
    while (true) {
      cells.insert(cells.end(), cur.begin(), cur.end());
      owner.push_back(i);
      if (owner.size() > grid_cells) {
        over = true;
        break;
      }
      bool done = true;
      for (size_t d = ndim; d-- > 0;) {
        if (++cur[d] < hi[d]) {
          done = false;
          break;
        }
        cur[d] = lo[d];
      }
      if (done) break;
    }
  }
  std::vector<uint32_t> order(owner.size());
  std::iota(order.begin(), order.end(), 0u);
  auto tuple_less = [&](uint32_t a, uint32_t b) {
    return std::lexicographical_compare(cells.begin() + a * ndim, cells.begin() + (a + 1) * ndim,
                                        cells.begin() + b * ndim, cells.begin() + (b + 1) * ndim);
  };
  std::sort(order.begin(), order.end(), tuple_less);
  for (size_t k = 1; k < order.size(); ++k) {
    uint32_t a = order[k - 1], b = order[k];
    if (!tuple_less(a, b)) {
      const ChunkBox& x = *chunks[std::min(owner[a], owner[b])];
      const ChunkBox& y = *chunks[std::max(owner[a], owner[b])];
      throw Error(ErrorCode::kInvalidArgument, "saved chunks overlap: " + describe(key, x) + " and " +
                                                   describe(key, y));
    }
  }
  if (over) {
    throw Error(ErrorCode::kInternal, "chunk overlap of '" + key + "' detected but not located");
  }

  // Disjoint and in bounds: coverage iff the volumes add up.
  int64_t volume = 0;
  for (const auto* c : chunks) volume += shape_numel(c->sizes);
  if (volume != numel) {
    throw Error(ErrorCode::kInvalidArgument, "saved chunks of '" + key + "' cover " + std::to_string(volume) +
                                                 " of its " + std::to_string(numel) +
                                                 " elements (global shape " + shape_to_string(global_shape) +
                                                 "): some part of the tensor is held by no rank");
  }
}

}  // namespace dcpp
