#include "storage/fs/read_plan.h"

#include <algorithm>
#include <functional>

#include "storage/fs/block_codec.h"
#include "storage/fs/fs_common.h"

namespace dcpp::fs_detail {
namespace {

// A gap between two pieces of one file is read through (instead of issuing
// two reads) when it is small and the bytes wasted so stay under 1/16 of the
// bytes needed, or when it is only the alignment padding between two items.
constexpr uint64_t kMaxGapBytes = 256 << 10;

}  // namespace

BlockRanges merge_ranges(BlockRanges r) {
  std::sort(r.begin(), r.end());
  BlockRanges out;
  for (const auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, x.second);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

size_t ReadPlan::item_index(const std::string& key, size_t chunk_index, const StorageLocation* loc, DType dtype) {
  auto [it, fresh] = item_ids_.try_emplace({std::string_view(key), chunk_index}, items.size());
  if (fresh) {
    Item item;
    item.key = key;
    item.chunk_index = chunk_index;
    item.loc = loc;
    item.dtype = dtype;
    item.splittable = block_size % dtype_size(dtype) == 0;
    items.push_back(std::move(item));
  }
  return it->second;
}

uint64_t ReadPlan::add_local(const std::vector<BoxRead>& reads) {
  uint64_t needed = 0;
  targets.reserve(reads.size());
  for (const BoxRead& r : reads) {
    BoxInChunk geom(r.chunk_sizes, r.box_offsets, r.box_lengths, dtype_size(r.dtype));
    if (geom.numel() == 0) continue;
    const size_t i = item_index(r.key, r.chunk_index, r.location, r.dtype);
    items[i].targets.push_back(targets.size());
    auto blocks = geom.touched_blocks(block_size);
    items[i].needed.insert(items[i].needed.end(), blocks.begin(), blocks.end());
    needed += geom.numel() * geom.element_size();
    targets.push_back({&r, std::move(geom)});
  }
  for (Item& item : items) {
    item.needed = merge_ranges(std::move(item.needed));
    // Blocks that cut elements cannot be handed out separately.
    if (!item.splittable && item.needed.size() > 1) {
      item.needed = {{item.needed.front().first, item.needed.back().second}};
    }
  }
  return needed;
}

void ReadPlan::cut_own(int rank, uint64_t max_read_bytes) {
  for (size_t i = 0; i < items.size(); ++i) {
    for (const auto& [first, last] : items[i].needed) {
      cut_pieces(i, first, last, items[i].splittable, max_read_bytes, block_size, rank, pieces);
    }
  }
}

std::vector<Op> ReadPlan::make_ops(int rank, uint64_t max_read_bytes) const {
  std::vector<size_t> mine;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].owner == rank) mine.push_back(i);
  }
  auto file_pos = [&](size_t p) {
    const Piece& piece = pieces[p];
    const StorageLocation& loc = *items[piece.item].loc;
    return std::make_pair(std::cref(loc.file), stored_span(loc, piece.first, piece.last, block_size).first);
  };
  std::sort(mine.begin(), mine.end(), [&](size_t a, size_t b) {
    auto pa = file_pos(a), pb = file_pos(b);
    if (pa.first != pb.first) return pa.first < pb.first;
    return pa.second < pb.second;
  });
  std::map<std::string, std::vector<Op>> by_file;
  Op* cur = nullptr;
  uint64_t cur_needed = 0, cur_waste = 0;
  for (size_t p : mine) {
    const Piece& piece = pieces[p];
    const StorageLocation& loc = *items[piece.item].loc;
    const auto [b, e] = stored_span(loc, piece.first, piece.last, block_size);
    bool join = false;
    if (cur && *cur->file == loc.file && b >= cur->end && e - cur->begin <= max_read_bytes) {
      const uint64_t gap = b - cur->end;
      const bool padding = piece.first == 0 && gap < kIoAlignment && b % kIoAlignment == 0;
      join = padding || (gap <= kMaxGapBytes && (cur_waste + gap) * 16 <= cur_needed + (e - b));
      if (join) cur_waste += gap;
    }
    if (join) {
      cur->end = e;
      cur->pieces.push_back(p);
      cur_needed += e - b;
    } else {
      auto& ops = by_file[loc.file];
      ops.push_back(Op{&loc.file, b, e, {p}});
      cur = &ops.back();
      cur_needed = e - b;
      cur_waste = 0;
    }
  }
  std::vector<Op> ops;
  for (size_t round = 0;; ++round) {
    bool any = false;
    for (auto& [file, list] : by_file) {
      if (round < list.size()) {
        ops.push_back(std::move(list[round]));
        any = true;
      }
    }
    if (!any) break;
  }
  return ops;
}

}  // namespace dcpp::fs_detail
