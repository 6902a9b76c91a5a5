// Crash consistency (simulated): a machine crash at every step of a save of the
// seed's model on 4 ranks, losing every write not yet fsynced and every
// directory entry change not yet made durable by an fsync of its directory
// (CrashFileSystem). Afterwards the path must load and verify completely as
// one generation, or be reported as incomplete/missing: never wrong data.
// Over an existing complete checkpoint, losing it counts as lost data.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "dcpp/testing/crash_file_system.h"
#include "reliability/reliability_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

constexpr int kWorld = 4;

// The first line of a step log naming the crash, without the "#n " prefix.
std::string crash_site(const std::vector<std::string>& log) {
  for (const auto& line : log) {
    if (line.find("(crash)") != std::string::npos) return line;
  }
  return "after the last step";
}

// Shortens paths in a step description to their last component.
std::string short_site(std::string s, const std::string& root) {
  for (size_t at; (at = s.find(root)) != std::string::npos;) s.erase(at, root.size() + 1);
  return s;
}

struct CrashTally {
  int points = 0;
  OutcomeCounts found;
  int lost = 0;   // an existing complete checkpoint gone or unloadable
  int wrong = 0;  // mixed or wrong data
  int aside = 0;  // path empty, the old checkpoint intact beside it (no RENAME_EXCHANGE)
  size_t undone = 0, cut = 0;
};

// Crashes a save at every step; `with_old`: over a complete old checkpoint.
// `compress`: both saves store encoded blocks (format version 2).
void crash_everywhere(bool with_old, bool exchange_supported, bool prefixes, CrashTally& tally,
                      bool compress = false) {
  TempDir tmp;
  FileSystemWriterOptions old_options;
  old_options.compress = compress;
  FileSystemWriterOptions new_options;
  new_options.io_threads = 1;
  new_options.compress = compress;
  // How many steps a clean save takes (the count varies a little with thread
  // interleaving; the sweep goes two past it so that the last points crash
  // after the commit).
  uint64_t clean_steps = 0;
  {
    auto fs = std::make_shared<CrashFileSystem>(tmp.path());
    fs->set_rename_exchange_supported(exchange_supported);
    const std::string path = tmp.path() + "/count/ckpt";
    if (with_old) {
      auto o = save_seed(path, kWorld, Generation::kOld, [&](int) { return fs; }, old_options);
      ASSERT_FALSE(o[0].threw) << o[0].message;
    }
    fs->make_all_durable();
    auto o = save_seed(path, kWorld, Generation::kNew, [&](int) { return fs; }, new_options);
    ASSERT_FALSE(o[0].threw) << o[0].message;
    clean_steps = fs->steps();
  }
  std::printf("[crash] %s checkpoint, RENAME_EXCHANGE %s: a clean save takes %llu steps\n",
              with_old ? "over a complete" : "with no previous", exchange_supported ? "on" : "off",
              static_cast<unsigned long long>(clean_steps));
  // One crash: at step k, keeping the first `keep` pending entry changes.
  // Returns the number of pending changes the crash found.
  auto one = [&](uint64_t k, size_t keep, bool recover) -> size_t {
    SCOPED_TRACE("crash at step " + std::to_string(k) + ", keeping " + std::to_string(keep) + " pending changes");
    const std::string root = tmp.path() + "/k" + std::to_string(k) + "-" + std::to_string(keep);
    std::filesystem::create_directories(root);
    const std::string path = root + "/ckpt";
    auto fs = std::make_shared<CrashFileSystem>(root);
    fs->set_rename_exchange_supported(exchange_supported);
    if (with_old) {
      auto o = save_seed(path, kWorld, Generation::kOld, [&](int) { return fs; }, old_options);
      EXPECT_FALSE(o[0].threw) << o[0].message;
    }
    fs->make_all_durable();
    fs->crash_at_step(k);
    auto outcomes = save_seed(path, kWorld, Generation::kNew, [&](int) { return fs; }, new_options);
    const bool crashed = fs->crashed();
    const std::string site = short_site(crash_site(fs->step_log()), root);
    int threw = 0;
    for (const auto& o : outcomes) threw += o.threw ? 1 : 0;
    if (crashed) {
      // Not part of the contract (the machine is gone), but the test process
      // lives on: every rank must have ended the same way, none hung. All
      // succeed only when the crash came after the commit, during the
      // removal of the replaced checkpoint (housekeeping whose errors a save
      // ignores).
      EXPECT_TRUE(threw == kWorld || threw == 0) << threw << " ranks threw after a crash at " << site;
    } else {
      EXPECT_EQ(threw, 0) << outcomes[0].message;
    }
    const size_t pending = fs->pending_changes();
    if (keep > 0 && keep >= pending) {
      fs.reset();
      std::filesystem::remove_all(root);
      return pending;  // this run's interleaving left fewer changes pending
    }
    auto [undone, cut] = fs->simulate_crash(keep);
    tally.undone += undone;
    tally.cut += cut;
    ++tally.points;
    Inspection seen = inspect_seed_checkpoint(path, kWorld);
    tally.found.add(seen.found);
    std::printf("[crash] step %llu, %zu of %zu pending changes kept: %s -> %s (%zu undone, %zu files cut)\n",
                static_cast<unsigned long long>(k), keep, pending, site.c_str(),
                std::string(found_name(seen.found)).c_str(), undone, cut);
    const bool wrong = seen.found == Found::kMixed || seen.found == Found::kWrong;
    bool lost = false;
    if (with_old) {
      lost = !(seen.found == Found::kOld || seen.found == Found::kNew);
      if (!exchange_supported && !std::filesystem::exists(path)) {
        // Without RENAME_EXCHANGE the writer moves the old checkpoint aside
        // first; a crash between its two renames leaves it there, and loads
        // of the path read it (counted apart).
        std::printf("[crash]   the path is empty; loads read .ckpt.dcpp-old: %s\n",
                    std::string(found_name(seen.found)).c_str());
        if (!lost) ++tally.aside;
      }
    } else {
      lost = seen.found == Found::kLoadError;
    }
    if (!crashed) EXPECT_EQ(seen.found, Found::kNew) << "a save that did not crash left " << found_name(seen.found);
    EXPECT_FALSE(wrong) << "crash at " << site << ": " << seen.detail;
    EXPECT_FALSE(lost) << "crash at " << site << " lost the checkpoint: " << found_name(seen.found) << " "
                       << seen.detail;
    tally.lost += lost ? 1 : 0;
    tally.wrong += wrong ? 1 : 0;

    if (recover) {
      // What the crash left behind does not block the next save.
      auto again = save_seed(path, kWorld, Generation::kNew, nullptr);
      for (const auto& o : again) EXPECT_FALSE(o.threw) << "the save after the crash failed: " << o.message;
      EXPECT_EQ(inspect_seed_checkpoint(path, kWorld).found, Found::kNew) << "after recovery";
    }
    fs.reset();
    std::filesystem::remove_all(root);
    return pending;
  };
  for (uint64_t k = 1; k <= clean_steps + 2; ++k) {
    const size_t pending = one(k, 0, /*recover=*/true);
    // Journaling file systems may have committed any prefix of the pending changes.
    if (prefixes) {
      for (size_t keep = 1; keep < pending; ++keep) one(k, keep, /*recover=*/false);
    }
  }
}

void report(const char* what, const CrashTally& t) {
  std::printf("[crash] %s: %d crash points simulated, path held %s; %zu entry changes undone, %zu files cut; "
              "old checkpoint left intact beside an empty path %d; lost data %d, wrong data %d\n",
              what, t.points, t.found.summary().c_str(), t.undone, t.cut, t.aside, t.lost, t.wrong);
}

TEST(reliability_Crash, EveryStepOverCompleteCheckpoint) {
  CrashTally t;
  crash_everywhere(/*with_old=*/true, /*exchange_supported=*/true, /*prefixes=*/true, t);
  report("over a complete checkpoint", t);
  EXPECT_EQ(t.lost + t.wrong, 0);
  EXPECT_GT(t.found.count(Found::kOld), 0);
  EXPECT_GT(t.found.count(Found::kNew), 0);
}

// The same sweep with compression: encoded blocks, placed as units finish.
TEST(reliability_Crash, EveryStepOverCompleteCheckpointCompressed) {
  CrashTally t;
  crash_everywhere(/*with_old=*/true, /*exchange_supported=*/true, /*prefixes=*/false, t, /*compress=*/true);
  report("over a complete checkpoint, compressed", t);
  EXPECT_EQ(t.lost + t.wrong, 0);
  EXPECT_GT(t.found.count(Found::kOld), 0);
  EXPECT_GT(t.found.count(Found::kNew), 0);
}

TEST(reliability_Crash, EveryStepOfAFirstSave) {
  CrashTally t;
  crash_everywhere(/*with_old=*/false, /*exchange_supported=*/true, /*prefixes=*/true, t);
  report("first save", t);
  EXPECT_EQ(t.lost + t.wrong, 0);
}

TEST(reliability_Crash, EveryStepWithoutRenameExchange) {
  CrashTally t;
  crash_everywhere(/*with_old=*/true, /*exchange_supported=*/false, /*prefixes=*/true, t);
  report("over a complete checkpoint, no RENAME_EXCHANGE", t);
  EXPECT_EQ(t.lost + t.wrong, 0);
}

// The model itself: unsynced bytes and entries vanish, synced ones stay.
TEST(reliability_Crash, CrashFileSystemDropsExactlyWhatIsNotDurable) {
  TempDir tmp;
  CrashFileSystem fs(tmp.path());
  const std::string d = tmp.path() + "/d";
  fs.mkdir(d);
  fs.fsync_dir(tmp.path());
  {
    std::unique_ptr<WritableFile> f = fs.open_write(d + "/synced");
    f->write_all("abcdef", 6, 0);
    f->sync();
    f->write_all("ghij", 4, 6);  // not synced
    f->close();
  }
  {
    std::unique_ptr<WritableFile> f = fs.open_write(d + "/unsynced");
    f->write_all("xyz", 3, 0);
    f->close();
  }
  fs.fsync_dir(d);                                  // both entries durable
  fs.rename(d + "/unsynced", d + "/renamed");       // not durable
  fs.mkdir(d + "/sub");                             // not durable
  fs.remove(d + "/synced");                         // not durable
  EXPECT_FALSE(fs.exists(d + "/synced"));
  auto [undone, cut] = fs.simulate_crash();
  EXPECT_EQ(undone, 3u);
  EXPECT_EQ(cut, 2u);
  PosixFileSystem posix;
  EXPECT_EQ(posix.list_dir(d), (std::vector<std::string>{"synced", "unsynced"}));
  EXPECT_EQ(posix.file_size(d + "/synced"), 6u);
  EXPECT_EQ(posix.file_size(d + "/unsynced"), 0u);

  // A crash refuses the armed step and everything after it.
  fs.crash_at_step(2);
  fs.mkdir(d + "/one");
  EXPECT_THROW(fs.mkdir(d + "/two"), Error);
  EXPECT_THROW(fs.list_dir(d), Error);
  EXPECT_TRUE(fs.crashed());
  fs.simulate_crash();
  EXPECT_EQ(posix.list_dir(d), (std::vector<std::string>{"synced", "unsynced"}));
}

}  // namespace
}  // namespace dcpp::testing
