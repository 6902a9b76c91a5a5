// Delivery of the read engine's read-once mode: the byte form of what the
// ranks exchange (each rank's needs, then per round the packed elements one
// rank read for another) and the glue between the exchanged needs and the
// pure piece assignment (piece_assignment.h).
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

 private:
  std::vector<uint64_t> base_;  // first id of each tensor, in key order, then the total
  std::vector<std::pair<const std::string*, const TensorMeta*>> tensors_;
  std::unordered_map<std::string_view, size_t> index_;
};

// Every rank's needs, as exchanged: the blocks each rank needs of each item
// (what the assignment reads), and where in that rank's message its boxes
// of the item lie (parsed only by the rank that reads a piece of the item
// for it). Holds the received messages.
struct Needs {
  struct Range {
    uint64_t id;  // ChunkIds
    int rank;
    uint64_t first, last;
  };
  struct Boxes {
    uint64_t id;
    int rank;
    size_t pos;    // in blobs[rank], where the boxes start
    uint64_t count;
  };
  std::vector<Range> ranges;  // sorted by (id, rank, first) by finish()
  std::vector<Boxes> boxes;   // sorted by (id, rank) by finish()
  std::vector<Blob> blobs;

  void finish();
};

// This rank's needs (blocks and boxes of every item it reads from).
void write_needs(WireWriter& w, const ReadPlan& plan, const ChunkIds& ids);
// Adds rank `from`'s needs (its message is needs.blobs[from]) to `needs`.
void read_needs(WireReader& r, int from, Needs& needs);
// True when some block range of an item is needed by two ranks (a saved
// item wanted by two ranks may share blocks): only then is there anything
// to deliver. Needs finish() first.
bool any_shared(const Needs& needs);

// The shared assignment: adds every needed item (from `metadata`) to `plan`
// and sets its pieces; the other ranks' boxes are added to the items this
// rank reads a piece of for them, and to no other.
void assign_shared(ReadPlan& plan, const Needs& needs, const ChunkIds& ids, int rank, int world,
                   const PieceSizes& sizes);

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
