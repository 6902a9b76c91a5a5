// Delivery of the read engine's read-once mode: the byte form of what the
// ranks exchange (each rank's needs to the chunks' homes, each home's
// assignment to the owners, then per round the packed elements one rank
// read for another) and the glue between them and the pure piece
// assignment (piece_assignment.h). HomeItems keeps pointers into the
// messages it read: they outlive it.
//
// A Round owns the blobs it sends; its deliveries point into them and into
// the ReadPlan's remote boxes, so the plan outlives its rounds. Packing
// happens on the reader threads, each delivery into its own disjoint slice
// of a blob; unpacking happens on the calling thread.
#pragma once

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "comm/wire.h"
#include "dcpp/comm.h"
#include "dcpp/metadata.h"
#include "storage/fs/read_plan.h"

namespace dcpp::fs_detail {

using comm_detail::WireReader;
using comm_detail::WireWriter;

// Every saved chunk of the metadata by one number: its tensor's place in
// key order, then its chunk index. What ranks exchange names items by it
// (no key strings), and every rank maps it back through its own metadata.
class ChunkIds {
 public:
  explicit ChunkIds(const Metadata& metadata);
  // The id of chunk `chunk_index` of `key`; throws kInternal when the metadata lacks it.
  uint64_t id(const std::string& key, size_t chunk_index) const;
  struct Chunk {
    const std::string* key;
    const TensorMeta* tensor;
    size_t chunk_index;
  };
  // The chunk with id `id`; throws kComm when there is none.
  Chunk chunk(uint64_t id, int from) const;
  uint64_t size() const { return base_.back(); }

 private:
  std::vector<uint64_t> base_;  // first id of each tensor, in key order, then the total
  std::vector<std::pair<const std::string*, const TensorMeta*>> tensors_;
  std::unordered_map<std::string_view, size_t> index_;
};

// The assignment is spread over the ranks: every item (a chunk id) has a
// home rank, id mod world, which alone learns who needs it, assigns its
// pieces (piece_assignment.h, with its own rank as first choice) and tells
// each owner what it reads and for whom, with its receivers' boxes. So a
// rank handles its own needs, its home items and its own pieces — never
// every rank's needs — and each exchange is one all_to_all_v.
inline int home_of(uint64_t id, int world) { return static_cast<int>(id % static_cast<uint64_t>(world)); }

// Step 1, every rank: its needs (block ranges and boxes of each item it
// reads from, in id order), one message per home. Sets the items' chunk
// ids and plan.own_ids.
void write_needs(std::vector<WireWriter>& to_home, ReadPlan& plan, const ChunkIds& ids);

// Step 2, on a home: the needs it received, and the assignment of its items.
class HomeItems {
 public:
  // Reads rank `from`'s message (in rank order); `blob` must outlive this.
  void read(WireReader& rd, int from, const Blob& blob);
  // Assigns the pieces of the items received and writes to each owner its
  // pieces with its receivers' boxes. Returns whether any piece is shared.
  bool assign(std::vector<WireWriter>& to_owner, const ChunkIds& ids, int home, int world, uint64_t block_size,
              const PieceSizes& sizes);

 private:
  struct Range {
    uint64_t id;
    int rank;
    uint64_t first, last;
  };
  struct Boxes {
    uint64_t id;
    int rank;
    const Blob* blob;
    size_t pos;  // where the boxes start in *blob
    uint64_t count;
    uint64_t bytes;
  };
  std::vector<Range> ranges_;
  std::vector<Boxes> boxes_;
};

// Step 3, every rank: from home `home`'s message, the pieces this rank
// reads (added to plan.pieces, items added as needed) and the boxes of the
// ranks it reads them for (added to the items' remote boxes, by rank).
void read_assignment(WireReader& rd, int home, ReadPlan& plan, const ChunkIds& ids, int rank);

// One packed delivery: the elements [l0, l1) of a remote rank's box that a
// piece holds, at `pos` of the blob for that rank.
struct Delivery {
  std::string* blob = nullptr;
  size_t pos = 0;
  const Item::RemoteBox* box = nullptr;
  uint64_t l0 = 0;
  uint64_t l1 = 0;
};
using Deliveries = std::map<size_t, std::vector<Delivery>>;  // by piece

// The bytes every round blob starts with, before its deliveries: this
// rank's status (comm/rank_status.h: an empty failure list, 8 bytes) and
// whether it has ops after this round. A failing rank sends its status alone.
inline constexpr size_t kRoundHeaderBytes = 16;
inline constexpr size_t kRoundMoreByte = 8;

// One exchange round of read-once delivery: the ops this rank reads in it,
// the blob packed for each rank (deliveries point into them), and the reads
// in flight.
struct Round {
  std::vector<size_t> ops;
  std::vector<std::string> out;
  Deliveries deliveries;
  std::vector<std::future<void>> reads;
  bool more = false;  // this rank has ops after this round
  uint64_t pieces = 0;  // deliveries packed for other ranks
};

// Picks the ops of the next round (at most round_bytes, at least one op
// when any is left) and lays out its outgoing blobs.
std::unique_ptr<Round> plan_round(const ReadPlan& plan, const std::vector<Op>& ops, size_t& next, int world,
                                  uint64_t round_bytes);
// Packs what piece `p` (item bytes from `a`, held at `at`) holds for other
// ranks into their blobs.
void pack_piece(ReadEngine& engine, const ReadPlan& plan, const Deliveries& deliveries, size_t p, uint64_t a,
                const std::byte* at);
// Applies every delivery in a blob received from rank `from` (after its header).
void unpack_blob(ReadEngine& engine, const ReadPlan& plan, const std::string& blob, int from, int me);

}  // namespace dcpp::fs_detail
