// Crash consistency (for real): a child process saving a state dict of about
// 200 MB (two thread ranks) is SIGKILLed at a random moment, over and over on
// the same path. After each kill the path must hold a complete checkpoint
// equal, element for element, to the last completed generation or to the
// one being saved; never anything else. Each trial prints its seed, when the
// kill came and which step of the save it interrupted (from the child's
// unbuffered step log).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "reliability/kill_child.h"
#include "support/distributed.h"

extern char** environ;

namespace dcpp::testing {
namespace {

#ifndef DCPP_KILL_CHILD
#error "tests.cmake defines DCPP_KILL_CHILD, the path of reliability_kill_child"
#endif

int trials() {
  if (const char* env = std::getenv("DCPP_KILL_TRIALS")) return std::max(1, std::atoi(env));
  return 50;
}

pid_t spawn_child(const std::string& path, uint32_t generation, const std::string& log) {
  std::string gen = std::to_string(generation);
  const char* argv[] = {DCPP_KILL_CHILD, path.c_str(), gen.c_str(), log.c_str(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, DCPP_KILL_CHILD, nullptr, nullptr, const_cast<char**>(argv), environ);
  if (rc != 0) throw std::runtime_error("posix_spawn " + std::string(DCPP_KILL_CHILD) + " failed: " + std::to_string(rc));
  return pid;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Waits until the child logs that save() begins (or exits); true if it did.
bool wait_for_saving(const std::string& log, pid_t pid) {
  for (int i = 0; i < 60000; ++i) {
    for (const auto& line : read_lines(log)) {
      if (line == "saving") return true;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Which phase of the save the last logged step belongs to.
std::string phase_of(const std::vector<std::string>& log) {
  if (log.empty()) return "starting";
  const std::string& last = log.back();
  auto has = [&](const char* s) { return last.find(s) != std::string::npos; };
  if (last == "done") return "completed";
  if (last == "filling") return "filling tensors";
  if (last == "saving") return "planning";
  if (has("error")) return "failed";
  if (has("metadata")) return "writing metadata";
  if (has("exchange") || has("fsync_dir") || (has("rename") && !has("metadata"))) return "committing";
  if (has("remove")) {
    // Removes before the data files are opened clean up a stale staging
    // directory; after the exchange they remove the old checkpoint.
    for (const auto& l : log) {
      if (l.find("exchange") != std::string::npos) return "removing the old checkpoint";
    }
    return "preparing";
  }
  if (has("mkdir")) return "preparing";
  if (has("pwrite") || has("open")) return "writing data";
  if (has("sync") || has("truncate")) return "syncing data";
  return "other";
}

// Which generation `path` holds: every element of every tensor checked
// against kill_test_value; -1 when it matches neither candidate.
int64_t held_generation(const std::string& path, uint32_t a, uint32_t b, std::string& why) {
  // Buffered reads: the bytes are verified against their block checksums and
  // element by element all the same, and the page cache spares the disk.
  CheckpointReader reader(std::make_unique<FileSystemReader>(path, FileSystemReaderOptions{.direct_io = false}));
  const int64_t g = reader.value("generation").as<int64_t>();
  if (g != a && g != b) {
    why = "the value 'generation' is " + std::to_string(g);
    return -1;
  }
  for (int k = 0; k < kKillTensors; ++k) {
    const std::string key = kill_test_key(k);
    Tensor t = reader.read(key);
    if (t.shape() != Shape{kKillRows, kKillCols}) {
      why = key + " has shape " + shape_to_string(t.shape());
      return -1;
    }
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (p[i] != kill_test_value(static_cast<uint32_t>(g), k, static_cast<uint64_t>(i))) {
        why = key + " element " + std::to_string(i) + " is not generation " + std::to_string(g) + "'s";
        return -1;
      }
    }
  }
  return g;
}

// `compress`: the child saves with FileSystemWriterOptions::compress (it
// reads DCPP_KILL_COMPRESS from its environment).
void sigkill_during_save(const std::string& name, bool compress, int n) {
  const uint64_t seed = test_seed(name);
  ::setenv("DCPP_KILL_COMPRESS", compress ? "1" : "0", 1);
  TempDir tmp;
  const std::string path = tmp.path() + "/ckpt";
  const std::string log = tmp.path() + "/steps.log";

  // Generation 0, run to completion: the existing checkpoint, and the time a save takes.
  pid_t pid = spawn_child(path, 0, log);
  ASSERT_TRUE(wait_for_saving(log, pid)) << "the child never started saving";
  auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the first save failed";
  const double full_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[kill] a whole save of %.0f MB by the child took %.0f ms\n",
              kKillTensors * kKillRows * kKillCols * 4 / 1e6, full_ms);
  std::string why;
  ASSERT_EQ(held_generation(path, 0, 0, why), 0) << why;

  uint32_t complete = 0;  // the last generation known complete on disk
  std::map<std::string, int> phases;
  int old_held = 0, new_held = 0, completed = 0, wrong = 0, lost = 0;
  for (int trial = 1; trial <= n; ++trial) {
    const uint64_t trial_seed = seed + static_cast<uint64_t>(trial);
    std::mt19937_64 rng(trial_seed);
    // Uniform over the length of a whole save, and a little past it.
    const double delay_ms = std::uniform_real_distribution<double>(0, full_ms * 1.05)(rng);
    std::remove(log.c_str());
    const uint32_t generation = static_cast<uint32_t>(trial);
    const auto trial_start = std::chrono::steady_clock::now();
    pid = spawn_child(path, generation, log);
    // The delay counts from the start of save(): killing the child while it
    // fills its tensors would test nothing.
    if (!wait_for_saving(log, pid)) ADD_FAILURE() << "trial " << trial << ": the child never started saving";
    const auto save_start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
    ::kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!killed) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "trial " << trial << ": the child failed";
    }
    std::vector<std::string> steps = read_lines(log);
    const std::string phase = killed ? phase_of(steps) : "completed";
    ++phases[phase];
    if (!killed) ++completed;

    const auto verify_start = std::chrono::steady_clock::now();
    std::string detail;
    int64_t held = -1;
    try {
      held = held_generation(path, complete, generation, detail);
    } catch (const Error& e) {
      detail = std::string("the checkpoint does not load: ") + e.what();
    }
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    const auto verify_end = std::chrono::steady_clock::now();
    std::printf("[kill] trial %d timing: child start %.0f ms, kill+reap %.0f ms, verification %.0f ms\n", trial,
                ms(trial_start, save_start), ms(save_start, verify_start) - delay_ms, ms(verify_start, verify_end));
    const char* verdict = held == complete ? "old" : held == generation ? "new" : "WRONG/LOST";
    std::printf("[kill] trial %d seed %llu: %s %.0f ms into save(), %s (last step: %s) -> path holds %s (generation %lld)\n",
                trial, static_cast<unsigned long long>(trial_seed), killed ? "SIGKILL" : "exited", delay_ms,
                phase.c_str(), steps.empty() ? "none" : steps.back().c_str(), verdict, static_cast<long long>(held));
    if (held == static_cast<int64_t>(complete)) {
      ++old_held;
      if (!killed) {
        ADD_FAILURE() << "trial " << trial << ": the save completed but the path holds the old generation";
        ++lost;
      }
    } else if (held == static_cast<int64_t>(generation)) {
      ++new_held;
      complete = generation;
    } else {
      ADD_FAILURE() << "trial " << trial << " (seed " << trial_seed << ", killed in " << phase << "): " << detail;
      if (detail.find("does not load") != std::string::npos) {
        ++lost;
      } else {
        ++wrong;
      }
      break;  // the next trials would compare against a broken base
    }
  }
  std::string where;
  for (const auto& [phase, count] : phases) where += " " + phase + "=" + std::to_string(count);
  std::printf("[kill] %d trials: %d real kills, %d saves completed before the kill; path held the old generation "
              "%d times, the new one %d times; lost data %d, wrong data %d; kills landed in:%s\n",
              n, n - completed, completed, old_held, new_held, lost, wrong, where.c_str());
  EXPECT_EQ(lost + wrong, 0);
}

TEST(reliability_Kill, SigkillDuringA200MBSave) {
  sigkill_during_save("reliability_Kill.SigkillDuringA200MBSave", false, trials());
}

// Fewer trials: the same protocol, with units placed as their encoding ends.
TEST(reliability_Kill, SigkillDuringACompressedSave) {
  sigkill_during_save("reliability_Kill.SigkillDuringACompressedSave", true, std::max(1, trials() / 5));
}

}  // namespace
}  // namespace dcpp::testing
