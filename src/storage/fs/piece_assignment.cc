#include "storage/fs/piece_assignment.h"

#include <algorithm>
#include <set>
#include <utility>

namespace dcpp::fs_detail {
namespace {

// Blocks [first, last] and the ranks that need every one of them.
struct Segment {
  uint64_t first = 0;
  uint64_t last = 0;
  std::vector<int> needers;  // ascending
};

// The item's needed blocks as maximal segments of constant needer sets.
std::vector<Segment> segments_of(const ItemNeeds& item) {
  std::vector<Segment> segments;
  if (item.ranges.empty()) return segments;
  if (!item.splittable) {
    uint64_t lo = UINT64_MAX, hi = 0;
    std::set<int> ranks;
    for (const NeededBlocks& r : item.ranges) {
      lo = std::min(lo, r.first);
      hi = std::max(hi, r.last);
      ranks.insert(r.rank);
    }
    segments.push_back({lo, hi, std::vector<int>(ranks.begin(), ranks.end())});
    return segments;
  }
  std::vector<uint64_t> cuts;
  for (const NeededBlocks& r : item.ranges) {
    cuts.push_back(r.first);
    cuts.push_back(r.last + 1);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    std::set<int> ranks;
    for (const NeededBlocks& r : item.ranges) {
      if (r.first <= cuts[c] && cuts[c] <= r.last) ranks.insert(r.rank);
    }
    if (ranks.empty()) continue;
    std::vector<int> who(ranks.begin(), ranks.end());
    if (!segments.empty() && segments.back().needers == who && segments.back().last + 1 == cuts[c]) {
      segments.back().last = cuts[c + 1] - 1;
    } else {
      segments.push_back({cuts[c], cuts[c + 1] - 1, std::move(who)});
    }
  }
  return segments;
}

}  // namespace

uint64_t piece_begin(const Piece& piece, uint64_t block_size) { return piece.first * block_size; }

uint64_t piece_end(const Piece& piece, uint64_t byte_length, uint64_t block_size) {
  return std::min((piece.last + 1) * block_size, byte_length);
}

void cut_pieces(size_t item, uint64_t first, uint64_t last, bool splittable, uint64_t max_bytes,
                uint64_t block_size, int owner, std::vector<Piece>& out) {
  if (!splittable) {
    out.push_back({item, first, last, owner, {}});
    return;
  }
  const uint64_t per = std::max<uint64_t>(1, max_bytes / block_size);
  for (uint64_t b = first; b <= last; b += per) out.push_back({item, b, std::min(last, b + per - 1), owner, {}});
}

std::vector<Piece> assign_pieces(const std::vector<ItemNeeds>& items, int world, const PieceSizes& sizes) {
  const uint64_t bs = sizes.block_size;
  auto bytes = [&](const Piece& p) { return piece_end(p, items[p.item].byte_length, bs) - piece_begin(p, bs); };
  std::vector<Piece> pieces;
  std::vector<uint64_t> load(static_cast<size_t>(world), 0);
  std::vector<std::pair<size_t, std::vector<int>>> shared;  // piece, needers
  for (size_t i = 0; i < items.size(); ++i) {
    for (Segment& s : segments_of(items[i])) {
      const size_t before = pieces.size();
      if (s.needers.size() == 1) {
        cut_pieces(i, s.first, s.last, items[i].splittable, sizes.max_read_bytes, bs, s.needers.front(), pieces);
        for (size_t p = before; p < pieces.size(); ++p) load[static_cast<size_t>(s.needers.front())] += bytes(pieces[p]);
      } else {
        cut_pieces(i, s.first, s.last, items[i].splittable, sizes.share_piece_bytes, bs, -1, pieces);
        for (size_t p = before; p < pieces.size(); ++p) shared.push_back({p, s.needers});
      }
    }
  }
  // Shared pieces go to the needer with the fewest bytes so far, after the
  // pieces only one rank needs are counted.
  for (auto& [p, who] : shared) {
    int best = who.front();
    for (int r : who) {
      if (load[static_cast<size_t>(r)] < load[static_cast<size_t>(best)]) best = r;
    }
    pieces[p].owner = best;
    load[static_cast<size_t>(best)] += bytes(pieces[p]);
    for (int r : who) {
      if (r != best) pieces[p].remote.push_back(r);
    }
  }
  return pieces;
}

}  // namespace dcpp::fs_detail
