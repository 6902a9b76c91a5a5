// The native format's read engine: turns a rank's boxes into few large,
// block-verified reads, runs them on a thread pool, and — given a
// communicator — reads each needed block once for all ranks.
//
// Planning: every box names the checksum blocks of its saved item that hold
// its bytes. The blocks of an item wanted by any box form pieces (at most
// max_read_bytes, cut at block boundaries when blocks hold whole elements);
// pieces of one file that are adjacent or separated by a small gap become
// one read (an "op"). An op fetches whole blocks (direct I/O on page-aligned
// offsets when the file system allows it), verifies every block, and copies
// into each destination exactly the box elements whose bytes the op holds —
// so no buffer ever holds more than one op, never a whole chunk.
//
// Read once, deliver everywhere (a communicator of more than one rank): each
// rank sends what it needs of each saved chunk to the chunk's home rank;
// each home assigns every needed piece of its chunks to one of the ranks
// needing it (fewest bytes so far among the home's pieces) and tells each
// owner its pieces and the boxes of the ranks it reads them for
// (read_delivery.h: two all_to_all_v, no rank sees every rank's needs);
// owners read only their pieces and send every other rank that needs a
// piece exactly the elements of its boxes the piece holds (packed,
// verified), one message per rank and round, in rounds of bounded size; the reads of the
// next round are queued behind the current one's, so reading goes on while
// a round is exchanged and unpacked. Disk traffic is then the union of the
// needed blocks, whatever the resharding. Failures travel in the exchanges
// (every message opens with comm/rank_status.h's status), so no rank waits
// for a failed one: the failing rank throws its error, the others stop and
// return, and load()'s status exchange then fails every rank, naming the
// failing one.
//
// The parts: read_plan.h (which blocks this rank needs, the ops),
// piece_assignment.h (who reads which piece: a pure function), read_delivery.h
// (the exchanged bytes and the rounds), read_execution.h (the reader threads,
// the preads and the checksum checks).
//
// Thread-safety: without a communicator, read() may be called from several
// threads at once; with one, read() is collective and one call per rank.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/tensor.h"

namespace dcpp::fs_detail {

// One box of one saved tensor chunk, copied (converting dtype) into `dest`.
struct BoxRead {
  std::string key;
  size_t chunk_index = 0;
  const StorageLocation* location = nullptr;
  DType dtype = DType::kFloat32;  // stored dtype
  Shape chunk_sizes;
  Shape box_offsets;
  Shape box_lengths;
  Tensor dest;  // shape box_lengths, any dtype and strides
};

struct ReadEngineOptions {
  size_t threads = 4;
  bool direct = true;
  uint64_t max_read_bytes = 16 << 20;
  // Read-once delivery: bytes each rank reads per exchange round, and the
  // size of the pieces shared blocks are dealt out in.
  uint64_t round_bytes = 32 << 20;
  uint64_t share_piece_bytes = 4 << 20;
  CommPtr comm;  // null or one rank: every rank reads what it needs itself
  // Needed with a communicator: owners read items they have no box of.
  const Metadata* metadata = nullptr;
};

class ReadEngine {
 public:
  ReadEngine(FileSystemPtr fs, std::string directory, uint64_t block_size, int rank);
  ~ReadEngine();
  ReadEngine(const ReadEngine&) = delete;
  ReadEngine& operator=(const ReadEngine&) = delete;

  // Reads every box. `local_error`, when set, is this rank's failure while
  // preparing: with a communicator it is still announced in the exchange
  // (so no rank waits) and rethrown; every rank then fails.
  void read(const std::vector<BoxRead>& reads, const ReadEngineOptions& options,
            std::exception_ptr local_error = nullptr);
  // A whole stored item (a value), verified.
  Bytes read_bytes(const std::string& key, const StorageLocation& location);

  StorageIoStats stats() const;
  void reset_stats();

  // For the parts of the engine (read_execution.cc, read_delivery.cc).
  struct Handles {
    std::unique_ptr<RandomAccessFile> buffered;
    std::unique_ptr<RandomAccessFile> direct;  // opened with try_direct; direct() false after a fallback
  };
  RandomAccessFile& file(const std::string& name, bool direct);
  // Reads file bytes [begin, end) into `dst`, which has room for the
  // page-aligned span around them when the handle is direct; returns the
  // pointer to byte `begin` inside dst. A span may cover several items:
  // when the file ends early, the error names key_at(where it ends), the
  // key whose bytes are missing.
  std::byte* read_span(const std::function<std::string(uint64_t file_offset)>& key_at, const StorageLocation& loc,
                       uint64_t begin, uint64_t end, std::byte* dst, bool direct);
  void verify_blocks(const std::string& key, const StorageLocation& loc, uint64_t first, uint64_t last,
                     const std::byte* item_bytes_at_first);
  // Decodes blocks [first, last] of an item with stored blocks, whose stored
  // bytes start at `stored`, into `out` (the item bytes of those blocks).
  // Error(kCorrupt) naming key, file and offset for a block that does not decode.
  void decode_blocks(const std::string& key, const StorageLocation& loc, uint64_t first, uint64_t last,
                     const std::byte* stored, std::byte* out);
  void add_sent(uint64_t n) { bytes_sent_ += n; }
  void add_received(uint64_t n) { bytes_received_ += n; }
  void add_needed(uint64_t n) { bytes_needed_ += n; }
  void add_exchange(uint64_t pieces, uint64_t messages) {
    pieces_sent_ += pieces;
    messages_sent_ += messages;
    ++exchange_rounds_;
  }
  uint64_t block_size() const { return block_size_; }
  int rank() const { return rank_; }
  const std::string& directory() const { return directory_; }

 private:
  FileSystemPtr fs_;
  std::string directory_;
  uint64_t block_size_;
  int rank_;
  std::mutex mutex_;
  std::map<std::string, Handles> files_;
  std::atomic<uint64_t> bytes_read_{0}, bytes_needed_{0}, bytes_sent_{0}, bytes_received_{0}, io_calls_{0};
  std::atomic<uint64_t> pieces_sent_{0}, messages_sent_{0}, exchange_rounds_{0};
  std::atomic<bool> direct_used_{false}, fallback_{false};
};

}  // namespace dcpp::fs_detail
