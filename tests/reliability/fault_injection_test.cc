// File-system faults injected through the file-system seam, counted per
// rank, into a save of the seed's model on 4 ranks over an existing complete
// checkpoint. Every failing save must fail on every rank with an error that
// names the failing rank and the injected fault, and the path must then load
// as the old checkpoint or the new one, byte for byte, never a mixture.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "dcpp/io.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "reliability/reliability_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

constexpr int kWorld = 4;

// Every op a save may call; the ones with a count of zero on a rank are skipped.
constexpr FsOp kSaveOps[] = {FsOp::kOpen,      FsOp::kPwrite,    FsOp::kSync,           FsOp::kTruncate,
                             FsOp::kClose,     FsOp::kRename,    FsOp::kRenameExchange, FsOp::kMkdir,
                             FsOp::kRemove,    FsOp::kRemoveAll, FsOp::kListDir,        FsOp::kFileType,
                             FsOp::kFileSize,  FsOp::kFsyncDir,  FsOp::kFreeSpace};

using Fis = std::shared_ptr<FaultInjectingFileSystem>;

std::vector<Fis> fresh_filesystems() {
  std::vector<Fis> fs;
  for (int r = 0; r < kWorld; ++r) fs.push_back(std::make_shared<FaultInjectingFileSystem>());
  return fs;
}

// A directory holding the old generation, complete.
void save_old(const std::string& path) {
  auto outcomes = save_seed(path, kWorld, Generation::kOld, nullptr);
  for (int r = 0; r < kWorld; ++r) ASSERT_FALSE(outcomes[r].threw) << "setting up the old checkpoint: " << outcomes[r].message;
  ASSERT_EQ(inspect_seed_checkpoint(path, kWorld).found, Found::kOld);
}

struct Tally {
  int cases = 0;
  int injected = 0;       // faults that fired
  int failed_saves = 0;   // saves that failed on every rank
  int ok_saves = 0;
  OutcomeCounts after_failure;  // what the path held after a failed save
  OutcomeCounts after_success;
  int bad = 0;            // lost or wrong data, mixed outcomes, unclear errors
};

// Runs one save with `arm` applied to rank `rank`'s file system and checks the contract.
void run_case(const std::string& root, const std::string& label, int rank,
              const std::function<void(FaultInjectingFileSystem&)>& arm, bool may_succeed, Tally& tally,
              FileSystemWriterOptions options = {}) {
  SCOPED_TRACE(label);
  const std::string path = root + "/case-" + std::to_string(tally.cases++) + "/ckpt";
  save_old(path);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<Fis> fs = fresh_filesystems();
  arm(*fs[rank]);
  auto outcomes = save_seed(path, kWorld, Generation::kNew, [&](int r) { return fs[r]; }, options);
  const bool fired = fs[rank]->faults_triggered() > 0;
  tally.injected += fired ? 1 : 0;
  int threw = 0;
  for (const auto& o : outcomes) threw += o.threw ? 1 : 0;
  Inspection seen = inspect_seed_checkpoint(path, kWorld);
  bool ok = true;
  if (threw == kWorld) {
    ++tally.failed_saves;
    tally.after_failure.add(seen.found);
    EXPECT_TRUE(fired) << "the save failed without the fault firing: " << outcomes[0].message;
    const std::string rank_name = "rank " + std::to_string(rank);
    for (int r = 0; r < kWorld; ++r) {
      const std::string& m = outcomes[r].message;
      // Clear: names the failing rank, and the injected cause or the failing
      // rank's file (a direct-I/O write that keeps coming back short says so).
      const std::string file = rank == 0 && m.find(std::string(kMetadataFileName)) != std::string::npos
                                   ? std::string(kMetadataFileName)
                                   : data_file_name(rank);
      bool clear = m.find(rank_name) != std::string::npos &&
                   (m.find("injected fault") != std::string::npos || m.find(file) != std::string::npos);
      EXPECT_TRUE(clear) << "rank " << r << "'s error does not name " << rank_name << " and the fault: " << m;
      ok = ok && clear;
    }
    bool intact = seen.found == Found::kOld || seen.found == Found::kNew;
    EXPECT_TRUE(intact) << "after a failed save the path holds " << found_name(seen.found) << ": " << seen.detail;
    ok = ok && intact;
  } else if (threw == 0) {
    ++tally.ok_saves;
    tally.after_success.add(seen.found);
    EXPECT_TRUE(may_succeed || !fired) << "the save succeeded although the fault fired";
    EXPECT_EQ(seen.found, Found::kNew) << "a successful save left " << found_name(seen.found) << ": " << seen.detail;
    ok = ok && seen.found == Found::kNew && (may_succeed || !fired);
  } else {
    ADD_FAILURE() << threw << " of " << kWorld << " ranks failed: errors must be collective";
    for (int r = 0; r < kWorld; ++r) {
      if (outcomes[r].threw) ADD_FAILURE() << "rank " << r << ": " << outcomes[r].message;
    }
    ok = false;
  }
  if (!ok) ++tally.bad;
  std::filesystem::remove_all(root + "/case-" + std::to_string(tally.cases - 1));
}

// Calls per rank per op of one clean save over a complete checkpoint.
std::vector<std::array<uint64_t, kNumFsOps>> count_calls(const std::string& root) {
  const std::string path = root + "/count/ckpt";
  save_old(path);
  std::vector<Fis> fs = fresh_filesystems();
  auto outcomes = save_seed(path, kWorld, Generation::kNew, [&](int r) { return fs[r]; });
  for (const auto& o : outcomes) EXPECT_FALSE(o.threw) << o.message;
  EXPECT_EQ(inspect_seed_checkpoint(path, kWorld).found, Found::kNew);
  std::vector<std::array<uint64_t, kNumFsOps>> counts(kWorld);
  for (int r = 0; r < kWorld; ++r) {
    for (int op = 0; op < kNumFsOps; ++op) counts[r][op] = fs[r]->count(static_cast<FsOp>(op));
  }
  std::filesystem::remove_all(root + "/count");
  return counts;
}

TEST(reliability_Faults, EveryKthCallOfEveryRankFailsCleanly) {
  TempDir tmp;
  auto counts = count_calls(tmp.path());
  Tally tally;
  int housekeeping_cases = 0;
  for (int rank = 0; rank < kWorld; ++rank) {
    std::string line = "rank " + std::to_string(rank) + " calls:";
    for (FsOp op : kSaveOps) {
      uint64_t n = counts[rank][static_cast<int>(op)];
      if (n > 0) line += " " + std::string(fs_op_name(op)) + "=" + std::to_string(n);
    }
    std::printf("[faults] %s\n", line.c_str());
    for (FsOp op : kSaveOps) {
      const uint64_t n = counts[rank][static_cast<int>(op)];
      for (uint64_t k = 1; k <= n; ++k) {
        const std::string label = "rank " + std::to_string(rank) + " " + std::string(fs_op_name(op)) + " #" +
                                  std::to_string(k) + " fails with EIO";
        // Only the last two calls of the coordinator's commit may fail without
        // failing the save: removing the replaced checkpoint and the directory
        // fsync after it, once the new checkpoint is live and durable.
        const bool housekeeping =
            rank == 0 && ((op == FsOp::kRemoveAll && k == n) || (op == FsOp::kFsyncDir && k == n));
        run_case(tmp.path(), label, rank,
                 [&](FaultInjectingFileSystem& fs) { fs.add_fault(Fault{.op = op, .nth = k, .error = EIO}); },
                 /*may_succeed=*/housekeeping, tally);
        if (!housekeeping) continue;
        ++housekeeping_cases;
      }
    }
  }
  std::printf("[faults] EIO at every call: %d cases, %d faults injected, %d saves failed, %d succeeded; "
              "after a failed save the path held %s; lost or wrong data: %d\n",
              tally.cases, tally.injected, tally.failed_saves, tally.ok_saves, tally.after_failure.summary().c_str(),
              tally.bad);
  EXPECT_EQ(tally.bad, 0);
  EXPECT_EQ(tally.injected, tally.cases);
  // A fault after the commit leaves the new checkpoint, reported as saved.
  EXPECT_EQ(housekeeping_cases, 2);
  EXPECT_EQ(tally.ok_saves, housekeeping_cases);
}

// Compressed saves (units placed in order as their encoding ends): every
// pwrite of every rank fails with EIO, or comes back short.
TEST(reliability_Faults, CompressedSavesFailCleanlyAtEveryWrite) {
  TempDir tmp;
  auto counts = count_calls(tmp.path());
  FileSystemWriterOptions compressed;
  compressed.compress = true;
  Tally eio, short_writes;
  for (int rank = 0; rank < kWorld; ++rank) {
    const uint64_t writes = counts[rank][static_cast<int>(FsOp::kPwrite)];
    for (uint64_t k = 1; k <= writes; ++k) {
      const std::string r = "rank " + std::to_string(rank) + " pwrite #" + std::to_string(k) + " (compressed)";
      run_case(tmp.path(), r + " fails with EIO", rank,
               [&](FaultInjectingFileSystem& fs) { fs.add_fault(Fault{.op = FsOp::kPwrite, .nth = k, .error = EIO}); },
               false, eio, compressed);
      run_case(tmp.path(), r + " is cut short", rank,
               [&](FaultInjectingFileSystem& fs) {
                 fs.add_fault(Fault{.op = FsOp::kPwrite, .nth = k, .short_write = true});
               },
               true, short_writes, compressed);
    }
  }
  std::printf("[faults] compressed: EIO at a pwrite: %d cases, %d fired, %d saves failed, path after failure %s; "
              "short writes: %d cases, %d saves succeeded; lost or wrong data: %d\n",
              eio.cases, eio.injected, eio.failed_saves, eio.after_failure.summary().c_str(), short_writes.cases,
              short_writes.ok_saves, eio.bad + short_writes.bad);
  EXPECT_EQ(eio.bad + short_writes.bad, 0);
  EXPECT_GT(eio.injected, 0);
}

TEST(reliability_Faults, FullDiskAndShortWritesOnEveryRank) {
  TempDir tmp;
  auto counts = count_calls(tmp.path());
  Tally enospc, short_writes, short_repeat_direct, space;
  for (int rank = 0; rank < kWorld; ++rank) {
    const uint64_t writes = counts[rank][static_cast<int>(FsOp::kPwrite)];
    for (uint64_t k = 1; k <= writes; ++k) {
      const std::string r = "rank " + std::to_string(rank) + " pwrite #" + std::to_string(k);
      run_case(tmp.path(), r + " fails with ENOSPC", rank,
               [&](FaultInjectingFileSystem& fs) { fs.add_fault(Fault{.op = FsOp::kPwrite, .nth = k, .error = ENOSPC}); },
               false, enospc);
      // A short write is no error: write_all must carry on, with buffered
      // and with direct I/O, and the save succeeds.
      for (bool direct : {true, false}) {
        run_case(tmp.path(), r + " is cut short" + (direct ? "" : " (buffered)"), rank,
                 [&](FaultInjectingFileSystem& fs) {
                   fs.add_fault(Fault{.op = FsOp::kPwrite, .nth = k, .short_write = true});
                 },
                 true, short_writes, {.direct_io = direct});
      }
    }
    // Every write is short: buffered I/O gets there in pieces; direct I/O
    // may give up with a clear error (pieces below a page cannot be written).
    for (bool direct : {true, false}) {
      run_case(tmp.path(), "rank " + std::to_string(rank) + " every pwrite cut short" + (direct ? "" : " (buffered)"),
               rank,
               [&](FaultInjectingFileSystem& fs) {
                 fs.add_fault(Fault{.op = FsOp::kPwrite, .nth = 1, .short_write = true, .repeat = true});
               },
               true, direct ? short_repeat_direct : short_writes, {.direct_io = direct});
    }
    // A disk that fills up after 0, 1, 4095, 4096, 4097 ... bytes of this rank's writes.
    for (uint64_t limit : {uint64_t{0}, uint64_t{1}, uint64_t{100}, uint64_t{4095}, uint64_t{4096}, uint64_t{4097},
                           uint64_t{8192}, uint64_t{12288}}) {
      run_case(tmp.path(), "rank " + std::to_string(rank) + " disk full after " + std::to_string(limit) + " bytes",
               rank, [&](FaultInjectingFileSystem& fs) { fs.set_space_limit(limit); }, true, space);
    }
  }
  for (auto* t : {&enospc, &short_writes, &short_repeat_direct, &space}) {
    const char* name = t == &enospc         ? "ENOSPC at every pwrite"
                       : t == &short_writes ? "short writes"
                       : t == &space        ? "disk full"
                                            : "every direct-I/O write short";
    std::printf("[faults] %s: %d cases, %d faults injected, %d saves failed, %d succeeded; after a failed save the "
                "path held %s; after a successful one %s; lost or wrong data: %d\n",
                name, t->cases, t->injected, t->failed_saves, t->ok_saves, t->after_failure.summary().c_str(),
                t->after_success.summary().c_str(), t->bad);
    EXPECT_EQ(t->bad, 0) << name;
  }
  EXPECT_EQ(enospc.injected, enospc.cases);
  // Short writes are absorbed: every such save succeeds with the new data.
  EXPECT_EQ(short_writes.ok_saves, short_writes.cases);
}

}  // namespace
}  // namespace dcpp::testing
