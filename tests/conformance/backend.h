// A storage format as the conformance suite sees it: how to make its writer
// and reader for a checkpoint path, where the bytes of a saved checkpoint's
// tensors lie (so the suite can truncate and corrupt them), and what the
// format honestly cannot do. Every registered backend runs every case of
// conformance_suite.cc; a case a backend's capabilities rule out is reported
// as skipped with the capability's reason, never as passed.
//
// Adding a backend is one line in a tests/conformance/*_backend.cc file
// (tests.cmake compiles every such file into both suite binaries):
//
//   StorageBackend my_backend() { ... }      // its description
//   DCPP_CONFORMANCE_BACKEND(my_backend);    // the registration
//
// Backends are registered during static initialisation and listed sorted by
// name, so every rank of an MPI run sees the same list in the same order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "dcpp/dtype.h"
#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/storage.h"

namespace dcpp::testing {

// Which rank of which world a writer or reader serves (for formats whose
// objects need it at construction; set_up tells every format again).
struct RankContext {
  int rank = 0;
  int world_size = 1;
};

// One stored chunk of a tensor: where its item lies in a local file, and
// where the tensor's raw bytes lie inside that item.
struct StoredItem {
  std::string key;
  Shape offsets;             // the chunk's global offsets
  std::string file;          // the file's name as the format records it (errors name it)
  std::string path;          // that file on this machine
  uint64_t item_offset = 0;  // the whole stored item (headers included)
  uint64_t item_length = 0;
  uint64_t data_offset = 0;  // the tensor's raw bytes, inside the item
  uint64_t data_length = 0;
};

// Every dcpp dtype, in DType order, and every kind of non-tensor value.
std::vector<DType> all_dtypes();
std::vector<ValueKind> all_value_kinds();

// What a format can do. A missing entry is a case the suite skips, with the
// matching reason in the skip message.
struct BackendCapabilities {
  std::vector<DType> dtypes = all_dtypes();  // round-tripped bit for bit
  std::string dtype_reason;
  std::vector<ValueKind> values = all_value_kinds();  // int, float, bool, string, bytes
  std::string value_reason;
  // A flipped byte inside a tensor's stored bytes fails the load.
  bool detects_corruption = true;
  std::string corruption_reason;
  // Errors about a damaged item name the byte offset.
  bool names_offset = true;
  // The writer takes a FileSystem, so a save can be failed inside a write.
  bool injectable_file_system = true;
  std::string file_system_reason;
  // Non-empty: the storage cannot be reached here (no server); every case
  // skips with this reason.
  std::string unavailable;
};

// The suite names checkpoints by local paths in a temporary directory it
// owns; a backend whose storage lives elsewhere (an object store) maps such
// a path to its own names in the factories, and back to the local files
// behind them in find_tensor_bytes and list_dir.
struct StorageBackend {
  std::string name;  // a gtest parameter name: letters, digits, '_'
  BackendCapabilities caps;
  // A writer for one rank of a save into `path`; `filesystem` null = the
  // format's default (only passed when caps.injectable_file_system).
  std::function<std::unique_ptr<StorageWriter>(const std::string& path, const RankContext& ctx,
                                               FileSystemPtr filesystem)>
      make_writer;
  std::function<std::unique_ptr<StorageReader>(const std::string& path, const RankContext& ctx)> make_reader;
  // Maps an item the reader's metadata reports (StoredItem with the item_*
  // fields and path = "<checkpoint>/<file>" filled) to its raw tensor bytes,
  // and `path` to the local file that holds them if that is elsewhere.
  // Null: the item is the raw bytes (data_* = item_*).
  std::function<void(StoredItem& item)> find_tensor_bytes;
  // The names a directory holds (what a save left beside its checkpoint).
  // Null: the local directory's entries.
  std::function<std::set<std::string>(const std::string& dir)> list_dir;
  // Runs `edit` on a local copy of the stored file `path` (a StoredItem's
  // path) and stores the result back (damage to an object in a store).
  // Null: `edit` runs on `path` itself.
  std::function<void(const std::string& path, const std::function<void(const std::string& local)>& edit)> edit_file;
};

void PrintTo(const StorageBackend& backend, std::ostream* os);

// Every chunk of every tensor of the checkpoint at `path`, from the
// backend's reader's metadata, sorted by (file, item offset).
std::vector<StoredItem> locate_items(const StorageBackend& backend, const std::string& path);

bool register_backend(StorageBackend backend);
// Sorted by name.
std::vector<StorageBackend> registered_backends();

#define DCPP_CONFORMANCE_BACKEND(make) \
  [[maybe_unused]] static const bool dcpp_conformance_backend_##make = ::dcpp::testing::register_backend(make())

}  // namespace dcpp::testing
