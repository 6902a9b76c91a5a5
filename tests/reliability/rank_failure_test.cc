// Rank failure (threads): a rank that throws in the middle of a save or a
// load. Every other rank must end with a dcpp::Error naming the failed rank
// before the communicator's deadline (the error is not a timeout), and a
// failed save must leave the previous checkpoint intact. The MPI half (a
// rank process killed under mpirun) is rank_kill_mpi_test.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "reliability/reliability_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

constexpr int kWorld = 4;
constexpr auto kTimeout = std::chrono::seconds(60);

// Forwards to the real file system; the chosen call throws a plain
// std::runtime_error (not a dcpp::Error: a bug or a foreign library failing).
class ThrowingFileSystem final : public ForwardingFileSystem {
 public:
  ThrowingFileSystem(FsOp op, int nth) : op_(op), nth_(nth) {}
  std::unique_ptr<RandomAccessFile> open_read(const std::string& p, const OpenReadOptions& o = {}) override {
    hit(FsOp::kOpen);
    return std::make_unique<ReadFile>(*this, ForwardingFileSystem::open_read(p, o));
  }
  std::unique_ptr<WritableFile> open_write(const std::string& p, const OpenWriteOptions& o = {}) override {
    hit(FsOp::kOpen);
    return std::make_unique<WriteFile>(*this, ForwardingFileSystem::open_write(p, o));
  }
  void rename(const std::string& a, const std::string& b) override {
    hit(FsOp::kRename);
    ForwardingFileSystem::rename(a, b);
  }

 private:
  class ReadFile final : public ForwardingRandomAccessFile {
   public:
    ReadFile(ThrowingFileSystem& fs, std::unique_ptr<RandomAccessFile> f)
        : ForwardingRandomAccessFile(std::move(f)), fs_(fs) {}
    size_t read(void* d, size_t n, uint64_t o) override {
      // Mid-load: a read of a data file, not of the metadata.
      if (path().find("data-") != std::string::npos) fs_.hit(FsOp::kPread);
      return ForwardingRandomAccessFile::read(d, n, o);
    }

   private:
    ThrowingFileSystem& fs_;
  };
  class WriteFile final : public ForwardingWritableFile {
   public:
    WriteFile(ThrowingFileSystem& fs, std::unique_ptr<WritableFile> f)
        : ForwardingWritableFile(std::move(f)), fs_(fs) {}
    size_t write(const void* d, size_t n, uint64_t o) override {
      fs_.hit(FsOp::kPwrite);
      return ForwardingWritableFile::write(d, n, o);
    }
    void sync() override {
      fs_.hit(FsOp::kSync);
      ForwardingWritableFile::sync();
    }

   private:
    ThrowingFileSystem& fs_;
  };

  void hit(FsOp op) {
    if (op == op_ && ++seen_ == nth_) throw std::runtime_error("the rank's thread blew up in " + std::string(fs_op_name(op)));
  }
  FsOp op_;
  int nth_;
  std::atomic<int> seen_{0};
};

struct Ended {
  bool threw = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  double seconds = 0;
};

void expect_named(const std::vector<Ended>& ended, int failed_rank, const char* what) {
  for (int r = 0; r < kWorld; ++r) {
    if (r == failed_rank) continue;
    const Ended& e = ended[r];
    EXPECT_TRUE(e.threw) << what << ": rank " << r << " did not fail";
    EXPECT_NE(e.code, ErrorCode::kTimeout) << what << ": rank " << r << " waited for its deadline: " << e.message;
    EXPECT_NE(e.message.find("rank " + std::to_string(failed_rank)), std::string::npos)
        << what << ": rank " << r << "'s error does not name rank " << failed_rank << ": " << e.message;
    std::printf("[rank-failure] %s: rank %d ended after %.3f s: %s\n", what, r, e.seconds, e.message.c_str());
  }
}

template <typename Fn>
void timed(Ended& e, Fn&& fn) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    fn();
  } catch (const Error& err) {
    e = {true, err.code(), err.what(), 0};
  } catch (const std::exception& err) {
    e = {true, ErrorCode::kInternal, std::string("not a dcpp::Error: ") + err.what(), 0};
  }
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(reliability_RankFailure, RankThrowsMidSave) {
  TempDir tmp;
  const std::string path = tmp.path() + "/ckpt";
  ASSERT_FALSE(save_seed(path, kWorld, Generation::kOld, nullptr)[0].threw);
  for (FsOp op : {FsOp::kOpen, FsOp::kPwrite, FsOp::kSync, FsOp::kRename}) {
    for (int failing : {0, 2}) {
      if (op == FsOp::kRename && failing != 0) continue;  // only the coordinator renames
      const std::string what = "save, rank " + std::to_string(failing) + " throws in " + std::string(fs_op_name(op));
      std::vector<Ended> ended(kWorld);
      run_ranks(
          kWorld,
          [&](CommPtr comm) {
            StateDict sd = seed_state_dict(comm, Generation::kNew);
            FileSystemWriterOptions o;
            if (comm->rank() == failing) o.filesystem = std::make_shared<ThrowingFileSystem>(op, 1);
            FileSystemWriter writer(path, o);
            timed(ended[comm->rank()], [&] { save(sd, writer, SaveOptions{.comm = comm}); });
          },
          RunRanksOptions{.timeout = kTimeout});
      expect_named(ended, failing, what.c_str());
      EXPECT_TRUE(ended[failing].threw);
      EXPECT_NE(ended[failing].message.find("blew up"), std::string::npos) << ended[failing].message;
      Inspection seen = inspect_seed_checkpoint(path, kWorld);
      EXPECT_EQ(seen.found, Found::kOld) << what << ": " << seen.detail;
    }
  }
}

TEST(reliability_RankFailure, RankThrowsMidLoad) {
  TempDir tmp;
  const std::string path = tmp.path() + "/ckpt";
  ASSERT_FALSE(save_seed(path, kWorld, Generation::kOld, nullptr)[0].threw);
  for (FsOp op : {FsOp::kOpen, FsOp::kPread}) {
    for (int failing : {0, 3}) {
      const std::string what = "load, rank " + std::to_string(failing) + " throws in " + std::string(fs_op_name(op));
      std::vector<Ended> ended(kWorld);
      run_ranks(
          kWorld,
          [&](CommPtr comm) {
            StateDict sd = seed_state_dict(comm, Generation::kNew);
            FileSystemReaderOptions o;
            if (comm->rank() == failing) o.filesystem = std::make_shared<ThrowingFileSystem>(op, 1);
            FileSystemReader reader(path, o);
            timed(ended[comm->rank()], [&] { load(sd, reader, LoadOptions{.comm = comm}); });
          },
          RunRanksOptions{.timeout = kTimeout});
      expect_named(ended, failing, what.c_str());
      EXPECT_TRUE(ended[failing].threw);
    }
  }
}

// A rank whose thread dies outside dcpp (its body throws) while the others
// are inside save or load: their collectives must fail fast, naming it.
TEST(reliability_RankFailure, RankThreadDiesWhileOthersSaveOrLoad) {
  TempDir tmp;
  const std::string path = tmp.path() + "/ckpt";
  ASSERT_FALSE(save_seed(path, kWorld, Generation::kOld, nullptr)[0].threw);
  for (bool saving : {true, false}) {
    const int dying = 1;
    const std::string what = std::string(saving ? "save" : "load") + ", rank 1's thread dies";
    std::vector<Ended> ended(kWorld);
    try {
      run_ranks(
          kWorld,
          [&](CommPtr comm) {
            StateDict sd = seed_state_dict(comm, Generation::kNew);
            if (comm->rank() == dying) throw std::runtime_error("rank thread died outside dcpp");
            timed(ended[comm->rank()], [&] {
              if (saving) {
                save(sd, path, SaveOptions{.comm = comm});
              } else {
                load(sd, path, LoadOptions{.comm = comm});
              }
            });
          },
          RunRanksOptions{.timeout = kTimeout});
      ADD_FAILURE() << "run_ranks did not rethrow the dead rank's exception";
    } catch (const std::exception& e) {
      std::printf("[rank-failure] %s: run_ranks rethrew: %s\n", what.c_str(), e.what());
    }
    expect_named(ended, dying, what.c_str());
    EXPECT_EQ(inspect_seed_checkpoint(path, kWorld).found, Found::kOld) << what;
  }
}

}  // namespace
}  // namespace dcpp::testing
