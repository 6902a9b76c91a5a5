// The simulated model of the planning benchmarks (planning_bench,
// planning_scale_bench): `tensors` bf16 tensors named by synthetic_key, the
// first `replicated` of shape [kSyntheticCols] on every rank, the others
// [kSyntheticRowsPerRank · ranks, kSyntheticCols] sharded by rows, each rank
// kSyntheticRowsPerRank of them. No I/O: only the save plans the ranks make.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dcpp/fs_storage.h"
#include "dcpp/metadata.h"
#include "dcpp/planner.h"

namespace dcpp::bench {

inline constexpr int64_t kSyntheticRowsPerRank = 4;
inline constexpr int64_t kSyntheticCols = 256;

inline std::string synthetic_key(int t) {
  char key[64];
  std::snprintf(key, sizeof key, "model.layers.%d.weight", t);
  return key;
}

// Every rank's local save plan, in rank order.
inline std::vector<SavePlan> synthetic_local_plans(int ranks, int tensors, int replicated) {
  std::vector<SavePlan> plans(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    auto& items = plans[static_cast<size_t>(r)].items;
    items.reserve(static_cast<size_t>(tensors));
    for (int t = 0; t < tensors; ++t) {
      WriteItem item;
      item.fqn = synthetic_key(t);
      item.dtype = DType::kBFloat16;
      if (t < replicated) {
        item.global_shape = {kSyntheticCols};
        item.offsets = {0};
        item.sizes = {kSyntheticCols};
      } else {
        item.global_shape = {kSyntheticRowsPerRank * ranks, kSyntheticCols};
        item.offsets = {kSyntheticRowsPerRank * r, 0};
        item.sizes = {kSyntheticRowsPerRank, kSyntheticCols};
      }
      item.nbytes = static_cast<uint64_t>(shape_numel(item.sizes)) * 2;
      items.push_back(std::move(item));
    }
  }
  return plans;
}

// Where the writer would put an item of `nbytes` at `end` of rank's data
// file, with one (made-up) block checksum.
inline StorageLocation synthetic_location(int rank, uint64_t end, uint64_t nbytes) {
  StorageLocation loc;
  loc.file = data_file_name(rank);
  loc.byte_offset = end;
  loc.byte_length = nbytes;
  loc.block_checksums = {0x9E3779B97F4A7C15ull ^ end};
  return loc;
}

}  // namespace dcpp::bench
