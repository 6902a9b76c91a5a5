// Piece assignment of the read engine: which rank reads which blocks of
// which saved item, and which other ranks receive them (read once, deliver
// everywhere). A pure function of what the needing ranks need: the read
// engine runs it on each chunk's home rank for that home's chunks
// (read_delivery.h), which then tells the owners. Nothing here knows files,
// tensors or communicators.
//
// The rule: the blocks of an item are split into segments with a constant
// set of needing ranks. A segment only one rank needs is read by that rank,
// in pieces of at most max_read_bytes. A segment several ranks need is cut
// into pieces of share_piece_bytes, each given — after the single-needer
// pieces are counted — to the needing rank with the fewest bytes so far
// (ties to the lowest rank, or the first at or after `first_choice`); the
// other needers receive it. An item whose
// blocks cut elements ("not splittable") is one segment from its first to
// its last needed block, needed by every rank that needs any of it.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dcpp::fs_detail {

// Blocks [first, last] (inclusive) of an item that `rank` needs.
struct NeededBlocks {
  int rank = 0;
  uint64_t first = 0;
  uint64_t last = 0;
};

// One saved item as the assignment sees it.
struct ItemNeeds {
  uint64_t byte_length = 0;  // the last block may be short
  bool splittable = true;    // block boundaries fall on element boundaries
  std::vector<NeededBlocks> ranges;
};

struct PieceSizes {
  uint64_t block_size = 1;
  uint64_t max_read_bytes = 16 << 20;    // pieces only one rank needs
  uint64_t share_piece_bytes = 4 << 20;  // pieces several ranks need
};

// Blocks [first, last] of item `item`, read by `owner` and sent to `remote`.
struct Piece {
  size_t item = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  int owner = 0;
  std::vector<int> remote;  // ranks other than the owner that need it, ascending

  bool operator==(const Piece&) const = default;
};

// Item bytes [begin, end) a piece covers.
uint64_t piece_begin(const Piece& piece, uint64_t block_size);
uint64_t piece_end(const Piece& piece, uint64_t byte_length, uint64_t block_size);

// Appends the pieces of blocks [first, last] of `item`, at most `max_bytes`
// each (one piece when the item is not splittable), all read by `owner`.
void cut_pieces(size_t item, uint64_t first, uint64_t last, bool splittable, uint64_t max_bytes,
                uint64_t block_size, int owner, std::vector<Piece>& out);

// The assignment for items in the given order (items[i] gives pieces with
// item == i). Pieces come item by item; the pieces several ranks share are
// dealt out in the order they appear. Ranks must lie in [0, world).
// `first_choice`: among needers with equally few bytes, the first at or
// after this rank (cyclically) gets the piece; 0 gives the lowest rank. The
// read engine assigns each item on one rank (its "home") with that home's
// rank here, so that homes starting from zero loads do not all pick rank 0.
std::vector<Piece> assign_pieces(const std::vector<ItemNeeds>& items, int world, const PieceSizes& sizes,
                                 int first_choice = 0);

}  // namespace dcpp::fs_detail
