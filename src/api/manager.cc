// CheckpointManager: step directories under a root, retention, cleanup and
// the free-space guard, each decision made by the coordinator alone and
// broadcast (see checkpoint_manager.h).
#include "dcpp/checkpoint_manager.h"

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <set>

#include "comm/rank_status.h"
#include "dcpp/error.h"
#include "dcpp/s3_file_system.h"
#include "io/paths.h"
#include "storage/fs/object_commit.h"

namespace dcpp {
namespace {

using comm_detail::WireReader;
using comm_detail::WireWriter;

constexpr std::string_view kStepPrefix = "step-";
constexpr size_t kStepDigits = 6;
constexpr std::string_view kStagingSuffix = ".dcpp-staging";
constexpr std::string_view kOldSuffix = ".dcpp-old";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

using paths::join;

// ".step-000100.dcpp-staging" → "step-000100" (and the same for ".dcpp-old").
std::optional<std::string> hidden_step_name(const std::string& name, std::string_view suffix) {
  if (name.size() <= 1 + suffix.size() || name[0] != '.') return std::nullopt;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return std::nullopt;
  std::string inner = name.substr(1, name.size() - 1 - suffix.size());
  if (!parse_step_dir_name(inner)) return std::nullopt;
  return inner;
}

int64_t mtime_of(const std::string& path) {
  // The FileSystem seam has no timestamps (nothing in a save or load needs
  // them); listing is informational, so a plain stat is enough.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec);
}

uint64_t directory_bytes(FileSystem& fs, const std::string& dir) {
  uint64_t total = 0;
  for (const std::string& name : fs.list_dir(dir)) {
    const std::string p = join(dir, name);
    if (fs.file_type(p) == FileType::kRegular) total += fs.file_size(p);
  }
  return total;
}

// ---- the coordinator decides, every rank learns the decision ----

struct Group {
  CommPtr comm;
  int coordinator = 0;
  int rank() const { return comm ? comm->rank() : 0; }
  bool is_coordinator() const { return rank() == coordinator; }
};

Group make_group(CommPtr comm, int coordinator) {
  Group g{std::move(comm), coordinator};
  const int world = g.comm ? g.comm->size() : 1;
  if (coordinator < 0 || coordinator >= world) {
    throw Error(ErrorCode::kInvalidArgument, "CheckpointManager: coordinator rank " + std::to_string(coordinator) +
                                                 " is outside the world of " + std::to_string(world) + " ranks");
  }
  return g;
}

// The communicator and coordinator of a save or load, set in `options`: the
// call's own, else the manager's, else (as save() and load() do) the state
// dict's DTensors' communicator, if any.
template <typename Options>
Group resolve_group(Options& options, const CheckpointManagerOptions& manager, const StateDict& state_dict) {
  if (!options.comm && manager.comm) {
    options.comm = manager.comm;
    options.coordinator_rank = manager.coordinator_rank;
  }
  if (!options.comm) options.comm = infer_communicator(state_dict);
  return make_group(options.comm, options.coordinator_rank);
}

// Runs `decide` on the coordinator only and hands its payload (or its error)
// to every rank: every rank returns the same payload or throws the same Error.
Blob decide(const Group& group, const std::function<Blob()>& decide_fn) {
  return comm_detail::decide_on_root(group.comm.get(), group.coordinator, decide_fn);
}

void write_steps(WireWriter& w, const std::vector<StepInfo>& steps) {
  w.u64(steps.size());
  for (const StepInfo& s : steps) {
    w.i64(s.step);
    w.str(s.path);
    w.u8(static_cast<uint8_t>(s.state));
    w.u64(s.bytes);
    w.i64(s.mtime_seconds);
  }
}

std::vector<StepInfo> read_steps(WireReader& r) {
  std::vector<StepInfo> steps(r.u64());
  for (StepInfo& s : steps) {
    s.step = r.i64();
    s.path = r.str();
    s.state = static_cast<CheckpointState>(r.u8());
    s.bytes = r.u64();
    s.mtime_seconds = r.i64();
  }
  return steps;
}

void write_strings(WireWriter& w, const std::vector<std::string>& v) {
  w.u64(v.size());
  for (const auto& s : v) w.str(s);
}

std::vector<std::string> read_strings(WireReader& r) {
  std::vector<std::string> v(r.u64());
  for (auto& s : v) s = r.str();
  return v;
}

}  // namespace

std::string step_dir_name(int64_t step) {
  if (step < 0) throw Error(ErrorCode::kInvalidArgument, "checkpoint step " + std::to_string(step) + " is negative");
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06" PRId64, step);
  return buf;
}

std::optional<int64_t> parse_step_dir_name(const std::string& name) {
  if (name.size() < kStepPrefix.size() + kStepDigits || name.compare(0, kStepPrefix.size(), kStepPrefix) != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(kStepPrefix.size());
  if (digits.size() > 18) return std::nullopt;  // keeps the value inside int64
  int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  // Only the canonical spelling: "step-0000100" would alias "step-000100".
  if (step_dir_name(step) != name) return std::nullopt;
  return step;
}

CheckpointManager::CheckpointManager(std::string root, CheckpointManagerOptions options)
    : root_(std::move(root)), options_(std::move(options)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_.empty()) throw Error(ErrorCode::kInvalidArgument, "CheckpointManager: empty root path");
  if (options_.block_size == 0) throw Error(ErrorCode::kInvalidArgument, "CheckpointManager: block_size must be > 0");
  fs_ = options_.filesystem ? options_.filesystem : file_system_for_path(root_);
}

std::string CheckpointManager::step_path(int64_t step) const { return join(root_, step_dir_name(step)); }

namespace {

// Coordinator only: the step directories under `root` (no root: none).
std::vector<StepInfo> scan_steps(FileSystem& fs, const std::string& root) {
  std::vector<StepInfo> steps;
  FileType root_type = fs.file_type(root);
  if (root_type == FileType::kNone) return steps;
  if (root_type != FileType::kDirectory) {
    throw Error(ErrorCode::kInvalidArgument, "checkpoint root " + quoted(root) + " exists and is not a directory");
  }
  for (const std::string& name : fs.list_dir(root)) {
    auto step = parse_step_dir_name(name);
    if (!step) continue;
    StepInfo info;
    info.step = *step;
    info.path = join(root, name);
    info.state = checkpoint_state(fs, info.path);
    if (info.state == CheckpointState::kMissing) continue;  // removed while we looked
    if (fs.file_type(info.path) == FileType::kDirectory) info.bytes = directory_bytes(fs, info.path);
    info.mtime_seconds = mtime_of(info.path);
    steps.push_back(std::move(info));
  }
  std::sort(steps.begin(), steps.end(), [](const StepInfo& a, const StepInfo& b) { return a.step < b.step; });
  return steps;
}

std::optional<int64_t> latest_complete(const std::vector<StepInfo>& steps) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->complete()) return it->step;
  }
  return std::nullopt;
}

// The steps whose data files the checkpoint at `path` refers to (incremental
// saves). A checkpoint whose metadata cannot be read refers to nothing
// known; it is kept or pruned on its own merits.
std::set<int64_t> referenced_steps(FileSystem& fs, const std::string& path) {
  std::set<int64_t> steps;
  Metadata md;
  try {
    md = read_fs_metadata(fs, path);
  } catch (const Error&) {
    return steps;
  }
  auto add = [&](const StorageLocation& loc) {
    if (auto dir = referenced_checkpoint(loc.file)) {
      if (auto s = parse_step_dir_name(*dir)) steps.insert(*s);
    }
  };
  for (const auto& [key, t] : md.tensors) {
    for (const auto& c : t.chunks) add(c.location);
  }
  for (const auto& [key, v] : md.values) add(v.location);
  return steps;
}

// Saving over a complete step that another step refers to would replace
// the files that step reads: refused.
void refuse_if_referenced(FileSystem& fs, const std::string& root, const std::vector<StepInfo>& steps, int64_t step) {
  bool exists = false;
  for (const StepInfo& s : steps) exists = exists || (s.step == step && s.complete());
  if (!exists) return;
  for (const StepInfo& s : steps) {
    if (!s.complete() || s.step == step) continue;
    if (referenced_steps(fs, s.path).count(step)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot save step " + std::to_string(step) + " again under " + quoted(root) + ": step " +
                      std::to_string(s.step) + " refers to its data files (incremental save); nothing was written");
    }
  }
}

// The newest complete step under `root` as the coordinator sees it, on every rank.
std::optional<int64_t> latest_on_coordinator(const Group& group, FileSystem& fs, const std::string& root) {
  Blob payload = decide(group, [&]() -> Blob {
    WireWriter w;
    auto latest = latest_complete(scan_steps(fs, root));
    w.i64(latest ? *latest : -1);
    return w.take();
  });
  WireReader r(payload);
  const int64_t step = r.i64();
  if (step < 0) return std::nullopt;
  return step;
}

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", n);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s (%" PRIu64 " bytes)", v, units[u], n);
  }
  return buf;
}

}  // namespace

void CheckpointManager::save(int64_t step, const StateDict& state_dict, SaveOptions options) {
  Group group = resolve_group(options, options_, state_dict);
  const std::string path = join(root_, step_dir_name(step));

  // Preflight, on the coordinator, before any byte is written.
  decide(group, [&]() -> Blob {
    FileSystem& fs = this->fs();
    const FileType root_type = fs.file_type(root_);
    if (root_type != FileType::kNone && root_type != FileType::kDirectory) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot save step " + std::to_string(step) + ": checkpoint root " + quoted(root_) +
                      " exists and is not a directory");
    }
    if (checkpoint_state(fs, path) == CheckpointState::kForeign) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot save step " + std::to_string(step) + ": " + quoted(path) +
                      " exists and is not a dcpp checkpoint; refusing to replace it");
    }
    if (options_.check_free_space && root_type == FileType::kDirectory) {
      std::vector<StepInfo> steps = scan_steps(fs, root_);
      if (auto previous = latest_complete(steps)) {
        const std::string prev_path = join(root_, step_dir_name(*previous));
        uint64_t needed = 0;
        try {
          needed = read_fs_metadata(fs, prev_path).total_bytes() +
                   fs.file_size(join(prev_path, std::string(kMetadataFileName)));
        } catch (const Error& e) {
          // A damaged old checkpoint must not block new saves: its files'
          // sizes are as good an estimate.
          if (e.code() != ErrorCode::kCorrupt && e.code() != ErrorCode::kUnsupported) throw;
          needed = directory_bytes(fs, prev_path);
        }
        const uint64_t free = fs.free_space(root_);
        if (free < needed) {
          throw Error(ErrorCode::kIo,
                      "refusing to save step " + std::to_string(step) + " under " + quoted(root_) +
                          ": the file system has " + human_bytes(free) + " free, but the previous checkpoint (step " +
                          std::to_string(*previous) + ") needed " + human_bytes(needed) + "; nothing was written");
        }
      }
    }
    return {};
  });

  FileSystemWriterOptions wopts;
  wopts.filesystem = fs_;
  wopts.overwrite = true;
  wopts.block_size = options_.block_size;
  wopts.compress = options_.compress;
  if (options_.incremental) {
    wopts.content_hashes = true;
    // The base: the newest complete step other than this one, as the
    // coordinator sees it; every rank reads its metadata for its own chunks.
    Blob payload = decide(group, [&]() -> Blob {
      WireWriter w;
      int64_t base = -1;
      const std::vector<StepInfo> steps = scan_steps(fs(), root_);
      refuse_if_referenced(fs(), root_, steps, step);
      for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
        if (it->complete() && it->step != step) {
          base = it->step;
          break;
        }
      }
      w.i64(base);
      return w.take();
    });
    WireReader r(payload);
    if (const int64_t base = r.i64(); base >= 0) {
      try {
        wopts.base = std::make_shared<const Metadata>(read_fs_metadata(fs(), step_path(base)));
        wopts.base_name = step_dir_name(base);
      } catch (const Error& e) {
        // An unreadable base only costs the saving: this step is written in full.
        if (e.code() != ErrorCode::kCorrupt && e.code() != ErrorCode::kNotFound &&
            e.code() != ErrorCode::kUnsupported) {
          throw;
        }
      }
    }
  }
  FileSystemWriter writer(path, wopts);
  dcpp::save(state_dict, writer, options);

  const RetentionPolicy policy = options_.retention;
  if (policy.keep_last == 0) return;
  decide(group, [&]() -> Blob {
    FileSystem& fs = this->fs();
    std::vector<StepInfo> steps = scan_steps(fs, root_);
    std::vector<int64_t> complete;
    for (const StepInfo& s : steps) {
      if (s.complete()) complete.push_back(s.step);
    }
    std::set<int64_t> keep;
    keep.insert(step);
    for (size_t i = 0; i < complete.size() && i < policy.keep_last; ++i) keep.insert(complete[complete.size() - 1 - i]);
    for (int64_t s : complete) {
      if (policy.keep_every > 0 && s % policy.keep_every == 0) keep.insert(s);
    }
    // Steps that a kept step refers to stay (references never chain, so
    // one pass finds them all).
    for (int64_t s : std::set<int64_t>(keep)) {
      for (int64_t r : referenced_steps(fs, join(root_, step_dir_name(s)))) keep.insert(r);
    }
    std::vector<std::string> failures;
    for (int64_t s : complete) {
      if (keep.count(s) || (policy.keep_every > 0 && s % policy.keep_every == 0)) continue;
      const std::string victim = join(root_, step_dir_name(s));
      try {
        fs.remove_all(victim);
      } catch (const Error& e) {
        failures.push_back(e.message());
      }
    }
    if (!failures.empty()) {
      std::string text = "step " + std::to_string(step) + " was saved to " + quoted(path) +
                         ", but removing old steps under the retention policy failed:";
      for (const auto& f : failures) text += " " + f + ";";
      text.pop_back();
      throw Error(ErrorCode::kIo, text);
    }
    fs.fsync_dir(root_);
    return {};
  });
}

std::vector<StepInfo> CheckpointManager::list_steps() {
  Group group = make_group(options_.comm, options_.coordinator_rank);
  Blob payload = decide(group, [&]() -> Blob {
    WireWriter w;
    write_steps(w, scan_steps(fs(), root_));
    return w.take();
  });
  WireReader r(payload);
  return read_steps(r);
}

std::optional<int64_t> CheckpointManager::latest_step() {
  return latest_on_coordinator(make_group(options_.comm, options_.coordinator_rank), fs(), root_);
}

void CheckpointManager::load(int64_t step, StateDict& state_dict, LoadOptions options) {
  Group group = resolve_group(options, options_, state_dict);
  const std::string path = join(root_, step_dir_name(step));
  decide(group, [&]() -> Blob {
    CheckpointState state = checkpoint_state(fs(), path);
    switch (state) {
      case CheckpointState::kComplete: return {};
      case CheckpointState::kMissing:
        throw Error(ErrorCode::kNotFound, "no checkpoint for step " + std::to_string(step) + ": " + quoted(path) +
                                              " does not exist");
      case CheckpointState::kIncomplete:
      case CheckpointState::kEmpty:
        throw Error(ErrorCode::kNotFound, "the checkpoint of step " + std::to_string(step) + " at " + quoted(path) +
                                              " is incomplete (its save did not finish)");
      case CheckpointState::kForeign:
        throw Error(ErrorCode::kNotFound, quoted(path) + " (step " + std::to_string(step) +
                                              ") is not a dcpp checkpoint");
    }
    return {};
  });
  FileSystemReaderOptions ropts;
  ropts.filesystem = fs_;
  FileSystemReader reader(path, ropts);
  dcpp::load(state_dict, reader, options);
}

std::optional<int64_t> CheckpointManager::load_latest(StateDict& state_dict, LoadOptions options) {
  const std::optional<int64_t> step =
      latest_on_coordinator(resolve_group(options, options_, state_dict), fs(), root_);
  if (step) load(*step, state_dict, options);
  return step;
}

CleanupReport CheckpointManager::cleanup() {
  Group group = make_group(options_.comm, options_.coordinator_rank);
  Blob payload = decide(group, [&]() -> Blob {
    FileSystem& fs = this->fs();
    CleanupReport report;
    const FileType root_type = fs.file_type(root_);
    if (root_type == FileType::kDirectory) {
      const std::vector<std::string> names = fs.list_dir(root_);
      const std::set<std::string> present(names.begin(), names.end());
      bool changed = false;
      for (const std::string& name : names) {
        const std::string p = join(root_, name);
        if (parse_step_dir_name(name)) {
          const CheckpointState state = checkpoint_state(fs, p);
          if (state == CheckpointState::kIncomplete || state == CheckpointState::kEmpty) {
            fs.remove_all(p);
            report.removed.push_back(p);
            changed = true;
          } else if (state == CheckpointState::kForeign) {
            report.skipped.push_back(p);
          } else if (state == CheckpointState::kComplete && !fs.atomic_rename()) {
            // On a store without rename a crashed save leaves its data
            // objects beside the complete checkpoint (object_commit.h).
            for (const std::string& leftover : fs_detail::unreferenced_data_files(fs, p)) {
              fs.remove(join(p, leftover));
              report.removed.push_back(join(p, leftover));
              changed = true;
            }
          }
        } else if (hidden_step_name(name, kStagingSuffix)) {
          // A staging directory outlives only a crashed save: the step it
          // was for holds the previous complete checkpoint or nothing.
          const CheckpointState state = checkpoint_state(fs, p);
          if (state == CheckpointState::kForeign) {
            report.skipped.push_back(p);
          } else if (state != CheckpointState::kMissing) {
            fs.remove_all(p);
            report.removed.push_back(p);
            changed = true;
          }
        } else if (auto step_name = hidden_step_name(name, kOldSuffix)) {
          const CheckpointState state = checkpoint_state(fs, p);
          const std::string target = join(root_, *step_name);
          if (state == CheckpointState::kForeign) {
            report.skipped.push_back(p);
          } else if (state == CheckpointState::kComplete && checkpoint_state(fs, target) == CheckpointState::kMissing) {
            // The crash came between moving the old checkpoint aside and
            // moving the new one in: the old one is the step's last good state.
            fs.rename(p, target);
            report.restored.push_back(target);
            changed = true;
          } else if (state != CheckpointState::kMissing) {
            fs.remove_all(p);
            report.removed.push_back(p);
            changed = true;
          }
        }
      }
      if (changed) fs.fsync_dir(root_);
    } else if (root_type != FileType::kNone) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoint root " + quoted(root_) + " exists and is not a directory");
    }
    WireWriter w;
    write_strings(w, report.removed);
    write_strings(w, report.restored);
    write_strings(w, report.skipped);
    return w.take();
  });
  WireReader r(payload);
  CleanupReport report;
  report.removed = read_strings(r);
  report.restored = read_strings(r);
  report.skipped = read_strings(r);
  return report;
}

}  // namespace dcpp
