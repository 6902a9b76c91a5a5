// The storage conformance cases: the promises every storage format makes
// under save() and load(), checked the same way for each registered backend
// (backend.h). Each case_* function runs on every rank of `comm` with the
// same directory `dir` (the checkpoint goes to dir/ckpt) and reports through
// gtest assertions. Expected values never come from the code under test:
// tensors are random bytes drawn from the seed (every bit pattern, NaN
// payloads included), load targets hold the bitwise complement of what they
// should receive (so a load that does nothing, or only part of its work,
// fails), and shard shapes are checked against literal tables.
//
// conformance_suite.cc turns the cases into tests; the world sizes they run
// at come from the runners below, which each suite binary defines: thread
// ranks at 1, 2, 3, 4 and 5 (conformance_test.cc), or the MPI world and its
// subsets (conformance_mpi_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "conformance/backend.h"
#include "dcpp/comm.h"

namespace dcpp::testing {

// ---- runners (one definition per suite binary) ----
using CaseBody = std::function<void(const CommPtr& comm, const std::string& dir)>;
// Runs `body` on every rank of each world the binary tests, each world with
// a fresh directory its ranks share.
void run_on_worlds(const CaseBody& body);
// N → M: runs `save` on one world, then `load` on each world the binary
// tests, in the same directory; for every saving world.
void run_resharded(const CaseBody& save, const CaseBody& load);

// ---- cases ----

// Tensors of `dtype` (sharded, replicated and plain) load back bit for bit.
void case_dtype_round_trip(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, DType dtype,
                           uint64_t seed);
// Tensors with a dimension of 0 (sharded and plain) and 0-d tensors.
void case_empty_and_scalar(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed);
// 10 rows over 3 and 4 ranks, 5 over 4 (an empty last shard), a Shard(1)
// with empty shards: shard shapes from a literal table, values bit for bit,
// global shapes as the reader reports them.
void case_uneven_shards(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed);
// Values of `kind`, edge cases and a random one included, nested in a dict.
void case_value_round_trip(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, ValueKind kind,
                           uint64_t seed);
// Resharding: saved with one placement per tensor, loaded with another
// (Shard(0) → Shard(1), Replicate → Shard(0), Shard(1) → Replicate, plain →
// Shard(0), Shard(0) → plain, 3-d Shard(0) → Shard(-1)) on any world.
void case_reshard_save(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed);
void case_reshard_load(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed);
// Keys the checkpoint lacks: one collective kNotFound error on every rank
// naming each missing key (a nested one by its dotted name) and nothing
// touched; allow_partial_load loads the rest and leaves those.
void case_missing_key(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed);

enum class Damage {
  kTruncate,  // the file holding the last item of a data file is cut inside that item's tensor bytes
  kFlipByte,  // one byte in the middle of that item's tensor bytes is flipped
};
// Every rank's load fails with a dcpp::Error naming the key, the file, the
// failing rank and (caps.names_offset) a byte offset inside the item.
void case_damaged_item(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, Damage damage,
                       uint64_t seed);

enum class SaveFailure {
  kFileWrite,         // the last rank's writer's file system fails its writes (EIO)
  kRankAfterWriting,  // the last rank throws once its writer has written its data
};
// Saves A, then a save of B fails part-way: every rank throws, the directory
// holding the checkpoint lists exactly what it did before, and A loads byte
// for byte; then B saves cleanly over A and loads.
void case_failed_overwrite(const StorageBackend& backend, const CommPtr& comm, const std::string& dir,
                           SaveFailure failure, uint64_t seed);

}  // namespace dcpp::testing
