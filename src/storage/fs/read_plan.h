// Read planning of the native format's read engine: which saved items this
// rank reads from, which checksum blocks of each its boxes touch, and how
// the pieces it reads coalesce into few large reads ("ops").
//
// A ReadPlan is built by one rank for one read() call and owns its items,
// targets and pieces; the BoxReads it points to, and the metadata locations
// they point to, must outlive it. Pieces come from piece_assignment.h: this
// rank's own cut (no communicator) or the shared assignment.
// Thread-safety: built on one thread; read-only once reads start.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/fs/box_math.h"
#include "storage/fs/piece_assignment.h"
#include "storage/fs/read_engine.h"

namespace dcpp::fs_detail {

// Inclusive block ranges, sorted, overlapping or adjacent ones merged.
using BlockRanges = std::vector<std::pair<uint64_t, uint64_t>>;
BlockRanges merge_ranges(BlockRanges ranges);

// A saved item some rank reads from.
struct Item {
  std::string key;
  size_t chunk_index = 0;
  uint64_t chunk_id = 0;  // read-once delivery: its id among the metadata's chunks
  const StorageLocation* loc = nullptr;
  DType dtype = DType::kFloat32;
  bool splittable = true;       // block boundaries fall on element boundaries
  std::vector<size_t> targets;  // this rank's boxes of it
  BlockRanges needed;           // this rank's merged block ranges
  // Other ranks' boxes of it (read-once delivery): what an owner packs for
  // them; only on the rank that reads a piece of it for them, by rank.
  struct RemoteBox {
    int rank;
    uint64_t target;  // index into that rank's own target list
    BoxInChunk geom;
  };
  std::vector<RemoteBox> remote_boxes;
};

// One box of this rank: where it goes and where it lies in its chunk.
struct Target {
  const BoxRead* read;
  BoxInChunk geom;
};

// One pread: file bytes [begin, end) holding whole pieces.
struct Op {
  const std::string* file = nullptr;
  uint64_t begin = 0;
  uint64_t end = 0;
  std::vector<size_t> pieces;
};

struct ReadPlan {
  explicit ReadPlan(uint64_t block_size) : block_size(block_size) {}

  // The index of (key, chunk_index) in `items`, added if new. `key` must
  // outlive the plan (a BoxRead's or the metadata's): the index views it.
  size_t item_index(const std::string& key, size_t chunk_index, const StorageLocation* loc, DType dtype);
  // Adds this rank's boxes (empty ones skipped) and the blocks they touch;
  // returns the box bytes they want.
  uint64_t add_local(const std::vector<BoxRead>& reads);
  // Pieces of this rank's own needed blocks, all read by `rank` (no sharing).
  void cut_own(int rank, uint64_t max_read_bytes);
  // This rank's pieces as coalesced reads, interleaved across files so the
  // threads read several files at once.
  std::vector<Op> make_ops(int rank, uint64_t max_read_bytes) const;

  uint64_t piece_begin(const Piece& p) const { return fs_detail::piece_begin(p, block_size); }
  uint64_t piece_end(const Piece& p) const { return fs_detail::piece_end(p, items[p.item].loc->byte_length, block_size); }

  uint64_t block_size;
  std::vector<Item> items;
  std::vector<Target> targets;
  std::vector<Piece> pieces;
  // Read-once delivery: (chunk id, item) of this rank's own items, by id.
  std::vector<std::pair<uint64_t, size_t>> own_ids;

 private:
  struct IdHash {
    size_t operator()(const std::pair<std::string_view, size_t>& k) const {
      return std::hash<std::string_view>()(k.first) ^ (k.second * 0x9E3779B97F4A7C15ull);
    }
  };
  std::unordered_map<std::pair<std::string_view, size_t>, size_t, IdHash> item_ids_;
};

}  // namespace dcpp::fs_detail
