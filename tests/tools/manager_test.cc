// CheckpointManager: step naming, retention, latest-step choice, cleanup
// after crashes, the free-space guard through the FileSystem seam, and
// collective use on thread ranks.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "dcpp/checkpoint_manager.h"
#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/testing/fault_injecting_file_system.h"
#include "dcpp/testing/models.h"
#include "dcpp/tp.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

namespace fs = std::filesystem;

// A file system that reports `free` bytes available and forwards everything
// else to a FaultInjectingFileSystem (which counts the calls).
class LowSpaceFileSystem final : public ForwardingFileSystem {
 public:
  explicit LowSpaceFileSystem(uint64_t free) : LowSpaceFileSystem(std::make_shared<FaultInjectingFileSystem>(), free) {}
  FaultInjectingFileSystem& counters() { return *counters_; }

  uint64_t free_space(const std::string& p) override {
    ForwardingFileSystem::free_space(p);  // counted, and fails like the real one on a bad path
    return free_;
  }

 private:
  LowSpaceFileSystem(std::shared_ptr<FaultInjectingFileSystem> counters, uint64_t free)
      : ForwardingFileSystem(counters), counters_(std::move(counters)), free_(free) {}

  std::shared_ptr<FaultInjectingFileSystem> counters_;
  uint64_t free_;
};

std::set<int64_t> complete_steps(CheckpointManager& m) {
  std::set<int64_t> out;
  for (const StepInfo& s : m.list_steps()) {
    if (s.complete()) out.insert(s.step);
  }
  return out;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

StateDict small_state(int64_t step) {
  return StateDict{{"w", Tensor::full({2, 3}, static_cast<double>(step))}, {"step", StateValue(step)}};
}

TEST(tools_StepNames, ZeroPaddedToSixDigitsAndWiderWhenNeeded) {
  EXPECT_EQ(step_dir_name(0), "step-000000");
  EXPECT_EQ(step_dir_name(100), "step-000100");
  EXPECT_EQ(step_dir_name(999999), "step-999999");
  EXPECT_EQ(step_dir_name(1234567), "step-1234567");
  EXPECT_THROW(step_dir_name(-1), Error);
  EXPECT_EQ(parse_step_dir_name("step-000100"), std::optional<int64_t>(100));
  EXPECT_EQ(parse_step_dir_name("step-1234567"), std::optional<int64_t>(1234567));
  for (const char* bad : {"step-100", "step-0000100", "step-00010x", "step--00001", "steps-000100", ".step-000100",
                          "step-000100.dcpp-staging", "step-"}) {
    EXPECT_EQ(parse_step_dir_name(bad), std::nullopt) << bad;
  }
}

TEST(tools_CheckpointManager, RetentionKeepsLastTwoAndEveryFifth) {
  TempDir tmp;
  CheckpointManagerOptions options;
  options.retention = {.keep_last = 2, .keep_every = 5};
  CheckpointManager m(tmp.path() + "/run", options);
  // Expected survivors after each save (keep the last 2 and multiples of 5).
  const std::map<int64_t, std::set<int64_t>> expected = {
      {1, {1}},           {2, {1, 2}},           {3, {2, 3}},         {4, {3, 4}},
      {5, {4, 5}},        {6, {5, 6}},           {7, {5, 6, 7}},      {8, {5, 7, 8}},
      {9, {5, 8, 9}},     {10, {5, 9, 10}},      {11, {5, 10, 11}},   {12, {5, 10, 11, 12}},
  };
  for (int64_t step = 1; step <= 12; ++step) {
    m.save(step, small_state(step));
    EXPECT_EQ(complete_steps(m), expected.at(step)) << "after saving step " << step;
  }
  EXPECT_EQ(names_in(tmp.path() + "/run"),
            (std::set<std::string>{"step-000005", "step-000010", "step-000011", "step-000012"}));
  EXPECT_EQ(m.latest_step(), std::optional<int64_t>(12));
}

TEST(tools_CheckpointManager, NoRetentionKeepsEverything) {
  TempDir tmp;
  CheckpointManager m(tmp.path());
  for (int64_t step : {3, 1, 2}) m.save(step, small_state(step));
  EXPECT_EQ(complete_steps(m), (std::set<int64_t>{1, 2, 3}));
}

TEST(tools_CheckpointManager, LatestStepSkipsAnIncompleteNewestStep) {
  TempDir tmp;
  CheckpointManager m(tmp.path());
  EXPECT_EQ(m.latest_step(), std::nullopt);
  StateDict target{{"w", Tensor::full({2, 3}, -1.0)}, {"step", StateValue(int64_t{-1})}};
  EXPECT_EQ(m.load_latest(target), std::nullopt);
  EXPECT_EQ(target.at("w").tensor().data<float>()[0], -1.0f) << "untouched when there is nothing to load";

  for (int64_t step : {100, 200, 300}) m.save(step, small_state(step));
  fs::remove(tmp.path() + "/step-000300/dcpp.metadata");  // the save of step 300 "crashed"
  EXPECT_EQ(m.latest_step(), std::optional<int64_t>(200));

  auto steps = m.list_steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].step, 100);
  EXPECT_TRUE(steps[0].complete());
  EXPECT_EQ(steps[2].step, 300);
  EXPECT_EQ(steps[2].state, CheckpointState::kIncomplete);
  EXPECT_FALSE(steps[2].complete());
  EXPECT_EQ(steps[2].path, tmp.path() + "/step-000300");
  EXPECT_EQ(steps[2].bytes, fs::file_size(tmp.path() + "/step-000300/data-00000.bin"));
  EXPECT_GT(steps[2].bytes, 4096u) << "w (24 bytes) and step (8 bytes), 4096-byte aligned";
  EXPECT_GT(steps[0].bytes, steps[2].bytes) << "a complete step also has its metadata";
  EXPECT_GT(steps[0].mtime_seconds, 0);

  EXPECT_EQ(m.load_latest(target), std::optional<int64_t>(200));
  Tensor w = target.at("w").tensor();
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(w.data<float>()[i], 200.0f);
  EXPECT_EQ(target.at("step").as<int64_t>(), 200);

  try {
    m.load(300, target);
    FAIL() << "loading an incomplete step must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(e.message().find("incomplete"), std::string::npos) << e.message();
  }
  m.load(100, target);
  EXPECT_EQ(target.at("step").as<int64_t>(), 100);
}

TEST(tools_CheckpointManager, CleanupRemovesWhatCrashedSavesLeftAndNothingElse) {
  TempDir tmp;
  const std::string root = tmp.path();
  CheckpointManager m(root);
  m.save(1, small_state(1));
  m.save(2, small_state(2));
  const std::string data = root + "/step-000001/data-00000.bin";

  // A save of step 3 that crashed while staging, one of step 4 that crashed
  // after renaming into place without metadata, an empty step directory, and
  // a crash while replacing step 7 without RENAME_EXCHANGE.
  fs::create_directories(root + "/.step-000003.dcpp-staging");
  fs::copy_file(data, root + "/.step-000003.dcpp-staging/data-00000.bin");
  fs::create_directories(root + "/step-000004");
  fs::copy_file(data, root + "/step-000004/data-00000.bin");
  fs::copy_file(data, root + "/step-000004/data-00001.bin");
  fs::create_directories(root + "/step-000006");
  fs::copy(root + "/step-000001", root + "/.step-000007.dcpp-old", fs::copy_options::recursive);
  // Not dcpp's: must survive.
  fs::create_directories(root + "/step-000005");
  std::ofstream(root + "/step-000005/notes.txt") << "mine\n";
  fs::create_directories(root + "/logs");
  std::ofstream(root + "/logs/train.log") << "loss 0.1\n";
  fs::create_directories(root + "/.step-000008.dcpp-staging");
  std::ofstream(root + "/.step-000008.dcpp-staging/README") << "someone else's\n";
  std::ofstream(root + "/step-000009") << "a file named like a step\n";

  EXPECT_EQ(m.latest_step(), std::optional<int64_t>(2));
  CleanupReport report = m.cleanup();
  EXPECT_EQ(std::set<std::string>(report.removed.begin(), report.removed.end()),
            (std::set<std::string>{root + "/.step-000003.dcpp-staging", root + "/step-000004", root + "/step-000006"}));
  EXPECT_EQ(report.restored, (std::vector<std::string>{root + "/step-000007"}));
  EXPECT_EQ(std::set<std::string>(report.skipped.begin(), report.skipped.end()),
            (std::set<std::string>{root + "/step-000005", root + "/.step-000008.dcpp-staging", root + "/step-000009"}));
  EXPECT_EQ(names_in(root), (std::set<std::string>{"step-000001", "step-000002", "step-000005", "step-000007", "logs",
                                                   ".step-000008.dcpp-staging", "step-000009"}));
  EXPECT_TRUE(fs::exists(root + "/step-000005/notes.txt"));
  EXPECT_TRUE(fs::exists(root + "/logs/train.log"));
  EXPECT_TRUE(fs::exists(root + "/.step-000008.dcpp-staging/README"));
  // The restored step is step 1's checkpoint under step 7's name.
  EXPECT_EQ(m.latest_step(), std::optional<int64_t>(7));
  StateDict target = small_state(-1);
  m.load(7, target);
  EXPECT_EQ(target.at("step").as<int64_t>(), 1);

  // A second cleanup has nothing left to do.
  CleanupReport again = m.cleanup();
  EXPECT_TRUE(again.removed.empty());
  EXPECT_TRUE(again.restored.empty());
}

TEST(tools_CheckpointManager, RefusesASaveWithoutTheSpaceThePreviousOneNeeded) {
  TempDir tmp;
  const std::string root = tmp.path() + "/run";
  CheckpointManager(root).save(1, small_state(1));
  const std::set<std::string> before = names_in(root);

  auto low = std::make_shared<LowSpaceFileSystem>(100);  // step 1 took 4 KiB of data plus metadata
  CheckpointManagerOptions options;
  options.filesystem = low;
  CheckpointManager m(root, options);
  low->counters().reset_counters();
  try {
    m.save(2, small_state(2));
    FAIL() << "the save must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(e.message().find("refusing to save step 2"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("100 B free"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("step 1"), std::string::npos) << e.message();
  }
  EXPECT_EQ(names_in(root), before) << "nothing written";
  EXPECT_EQ(low->counters().count(FsOp::kFreeSpace), 1u) << "free space asked through the injected seam";
  EXPECT_EQ(low->counters().count(FsOp::kMkdir), 0u);
  EXPECT_EQ(low->counters().count(FsOp::kPwrite), 0u);
  EXPECT_EQ(low->counters().count(FsOp::kRename), 0u);

  // Enough room (the previous step's size exactly): the save goes ahead.
  const uint64_t needed = read_fs_metadata(*default_file_system(), root + "/step-000001").total_bytes() +
                          fs::file_size(root + "/step-000001/dcpp.metadata");
  CheckpointManagerOptions roomy;
  roomy.filesystem = std::make_shared<LowSpaceFileSystem>(needed);
  CheckpointManager(root, roomy).save(2, small_state(2));
  EXPECT_EQ(CheckpointManager(root).latest_step(), std::optional<int64_t>(2));

  // With no previous checkpoint there is nothing to compare with.
  CheckpointManager fresh(tmp.path() + "/fresh", options);
  fresh.save(1, small_state(1));
  EXPECT_EQ(fresh.latest_step(), std::optional<int64_t>(1));
}

TEST(tools_CheckpointManager, RefusesToReplaceSomethingThatIsNotDcpps) {
  TempDir tmp;
  fs::create_directories(tmp.path() + "/step-000004");
  std::ofstream(tmp.path() + "/step-000004/mine.txt") << "x";
  CheckpointManager m(tmp.path());
  try {
    m.save(4, small_state(4));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("not a dcpp checkpoint"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(fs::exists(tmp.path() + "/step-000004/mine.txt"));
  EXPECT_THROW(m.save(-1, small_state(1)), Error);
}

// Three thread ranks save a tensor-parallel model through their own managers
// (each with its own counting file system); only the coordinator looks at or
// changes the root, every rank gets the same answers, refusals reach all.
TEST(tools_CheckpointManager, CollectiveOnThreeThreadRanks) {
  TempDir tmp;
  const std::string root = tmp.path() + "/run";
  constexpr int kWorld = 3;
  const ParallelizePlan plan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};
  std::vector<std::shared_ptr<FaultInjectingFileSystem>> fss;
  for (int r = 0; r < kWorld; ++r) fss.push_back(std::make_shared<FaultInjectingFileSystem>());
  std::mutex mu;
  std::vector<std::optional<int64_t>> latest(kWorld), loaded(kWorld);
  std::vector<std::vector<int64_t>> listed(kWorld);
  std::vector<std::string> refusal(kWorld);
  std::vector<ErrorCode> refusal_code(kWorld, ErrorCode::kInternal);
  std::vector<size_t> cleanup_removed(kWorld, 99);

  run_ranks(kWorld, [&](CommPtr comm) {
    const int rank = comm->rank();
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {kWorld});
    MLPModule model(Device::kCpu);
    parallelize_module(model, mesh, plan);
    CheckpointManagerOptions options;
    options.filesystem = fss[rank];
    options.retention.keep_last = 2;
    options.comm = comm;
    CheckpointManager manager(root, options);
    for (int64_t step = 1; step <= 3; ++step) {
      for (const auto& p : model.parameters()) p->local().fill_(static_cast<double>(step));
      StateDict sd = model.state_dict();
      sd.set("step", StateValue(step));
      manager.save(step, sd);
    }
    auto l = manager.latest_step();
    std::vector<int64_t> steps;
    for (const StepInfo& s : manager.list_steps()) steps.push_back(s.step);
    CleanupReport report = manager.cleanup();

    // A fresh model with sentinel values, loaded through a manager with no
    // communicator of its own: it is inferred from the DTensors.
    MLPModule fresh(Device::kCpu);
    parallelize_module(fresh, mesh, plan);
    for (const auto& p : fresh.parameters()) p->local().fill_(-7.0);
    StateDict target = fresh.state_dict();
    target.set("step", StateValue(int64_t{-1}));
    CheckpointManagerOptions plain;
    plain.filesystem = fss[rank];
    auto got = CheckpointManager(root, plain).load_latest(target);
    for (const auto& [name, p] : fresh.named_parameters()) {
      Tensor full = p->dtensor().full_tensor();
      EXPECT_TRUE(equal(full, Tensor::full(full.sizes(), 3.0))) << name << " on rank " << rank;
    }
    EXPECT_EQ(target.at("step").as<int64_t>(), 3);

    // Every rank is told "no room" and none writes or hangs.
    CheckpointManagerOptions tight = options;
    auto low = std::make_shared<LowSpaceFileSystem>(10);
    tight.filesystem = low;
    try {
      CheckpointManager(root, tight).save(4, model.state_dict());
    } catch (const Error& e) {
      std::lock_guard lock(mu);
      refusal[rank] = e.message();
      refusal_code[rank] = e.code();
    }
    if (rank != 0) {
      EXPECT_EQ(low->counters().count(FsOp::kFreeSpace), 0u) << "rank " << rank;
    }

    std::lock_guard lock(mu);
    latest[rank] = l;
    loaded[rank] = got;
    listed[rank] = steps;
    cleanup_removed[rank] = report.removed.size();
  });

  for (int r = 0; r < kWorld; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(latest[r], std::optional<int64_t>(3));
    EXPECT_EQ(loaded[r], std::optional<int64_t>(3));
    EXPECT_EQ(listed[r], (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(cleanup_removed[r], 0u);
    EXPECT_EQ(refusal_code[r], ErrorCode::kIo);
    EXPECT_NE(refusal[r].find("refusing to save step 4"), std::string::npos) << refusal[r];
  }
  EXPECT_EQ(names_in(root), (std::set<std::string>{"step-000002", "step-000003"}));
  // Only the coordinator lists, deletes or asks for free space.
  EXPECT_GT(fss[0]->count(FsOp::kListDir), 0u);
  EXPECT_GT(fss[0]->count(FsOp::kRemoveAll), 0u);
  EXPECT_GT(fss[0]->count(FsOp::kFreeSpace), 0u);
  for (int r = 1; r < kWorld; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(fss[r]->count(FsOp::kListDir), 0u);
    EXPECT_EQ(fss[r]->count(FsOp::kRemoveAll), 0u);
    EXPECT_EQ(fss[r]->count(FsOp::kFreeSpace), 0u);
    EXPECT_GT(fss[r]->count(FsOp::kPwrite), 0u) << "each rank wrote its own shards";
  }
}

}  // namespace
}  // namespace dcpp::testing
