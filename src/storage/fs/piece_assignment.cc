#include "storage/fs/piece_assignment.h"

#include <algorithm>
#include <climits>
#include <utility>

namespace dcpp::fs_detail {
namespace {

// Blocks [first, last] and the ranks that need every one of them.
struct Segment {
  uint64_t first = 0;
  uint64_t last = 0;
  std::vector<int> needers;  // ascending
};

// The item's needed blocks as maximal segments of constant needer sets: a
// sweep over the range ends in block order, so an item needed by k ranges
// costs O(k log k) plus the size of the needer lists it produces (not k²).
std::vector<Segment> segments_of(const ItemNeeds& item) {
  std::vector<Segment> segments;
  if (item.ranges.empty()) return segments;
  if (!item.splittable) {
    uint64_t lo = UINT64_MAX, hi = 0;
    std::vector<int> ranks;
    ranks.reserve(item.ranges.size());
    for (const NeededBlocks& r : item.ranges) {
      lo = std::min(lo, r.first);
      hi = std::max(hi, r.last);
      ranks.push_back(r.rank);
    }
    std::sort(ranks.begin(), ranks.end());
    ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
    segments.push_back({lo, hi, std::move(ranks)});
    return segments;
  }
  // Events: at block `at`, rank `rank` starts (+1) or stops (-1) needing.
  struct Event {
    uint64_t at;
    int delta;
    int rank;
  };
  std::vector<Event> events;
  events.reserve(2 * item.ranges.size());
  for (const NeededBlocks& r : item.ranges) {
    events.push_back({r.first, +1, r.rank});
    events.push_back({r.last + 1, -1, r.rank});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.at != b.at ? a.at < b.at : a.delta < b.delta;
  });
  // A rank's own ranges may overlap (they are merged on the sending rank, but
  // need not be here): a count per active rank keeps the set exact.
  std::vector<std::pair<int, int>> active;  // (rank, count), by rank
  for (size_t e = 0; e < events.size();) {
    const uint64_t at = events[e].at;
    for (; e < events.size() && events[e].at == at; ++e) {
      const Event& ev = events[e];
      auto it = std::lower_bound(active.begin(), active.end(), std::make_pair(ev.rank, INT_MIN));
      if (ev.delta > 0) {
        if (it != active.end() && it->first == ev.rank) {
          ++it->second;
        } else {
          active.insert(it, {ev.rank, 1});
        }
      } else if (it != active.end() && it->first == ev.rank && --it->second == 0) {
        active.erase(it);
      }
    }
    if (active.empty() || e == events.size()) continue;
    const uint64_t next = events[e].at;  // the segment is [at, next)
    const bool same = !segments.empty() && segments.back().last + 1 == at &&
                      segments.back().needers.size() == active.size() &&
                      std::equal(active.begin(), active.end(), segments.back().needers.begin(),
                                 [](const std::pair<int, int>& a, int b) { return a.first == b; });
    if (same) {
      segments.back().last = next - 1;
    } else {
      Segment seg{at, next - 1, {}};
      seg.needers.reserve(active.size());
      for (const auto& [rank, count] : active) seg.needers.push_back(rank);
      segments.push_back(std::move(seg));
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

std::vector<Piece> assign_pieces(const std::vector<ItemNeeds>& items, int world, const PieceSizes& sizes,
                                 int first_choice) {
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
    // `who` is ascending: start at the first needer at or after first_choice.
    const size_t start =
        static_cast<size_t>(std::lower_bound(who.begin(), who.end(), first_choice) - who.begin()) % who.size();
    int best = who[start];
    for (size_t k = 1; k < who.size(); ++k) {
      const int r = who[(start + k) % who.size()];
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
