// `dcpp ls`: the steps under a CheckpointManager root.
#include <cstdio>

#include "cli/cli.h"
#include "dcpp/checkpoint_manager.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/s3_file_system.h"
#include "storage/fs/object_commit.h"

namespace dcpp::cli {
namespace {

std::string_view state_name(CheckpointState s) {
  switch (s) {
    case CheckpointState::kComplete: return "complete";
    case CheckpointState::kIncomplete: return "incomplete";
    case CheckpointState::kEmpty: return "empty";
    case CheckpointState::kForeign: return "not-dcpp";
    case CheckpointState::kMissing: return "missing";
  }
  return "unknown";
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int run_ls(const LsArgs& args) {
  const FileSystemPtr fs_holder = file_system_for_path(args.root);
  FileSystem& fs = *fs_holder;
  std::string root = args.root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  const FileType type = fs.file_type(root);
  if (type == FileType::kNone) {
    std::fprintf(stderr, "dcpp ls: '%s' does not exist\n", root.c_str());
    return kExitNotCheckpoint;
  }
  if (type != FileType::kDirectory) {
    std::fprintf(stderr, "dcpp ls: '%s' is not a directory (a checkpoint root is a directory of step-NNNNNN "
                 "checkpoints)\n", root.c_str());
    return kExitNotCheckpoint;
  }
  const CheckpointState own = checkpoint_state(fs, root);
  if (own == CheckpointState::kComplete || own == CheckpointState::kIncomplete) {
    std::fprintf(stderr, "dcpp ls: '%s' is a checkpoint itself, not a root of steps; use `dcpp inspect %s`\n",
                 root.c_str(), root.c_str());
    return kExitNotCheckpoint;
  }

  CheckpointManager manager(root);
  const std::vector<StepInfo> steps = manager.list_steps();
  std::vector<std::string> staging;
  for (const std::string& name : fs.list_dir(root)) {
    if (!name.empty() && name[0] == '.' && (ends_with(name, ".dcpp-staging") || ends_with(name, ".dcpp-old"))) {
      staging.push_back(name);
    }
  }
  // On a store without rename, a crashed save leaves data objects beside a
  // complete step (src/storage/fs/object_commit.h).
  if (!fs.atomic_rename()) {
    for (const StepInfo& s : steps) {
      if (!s.complete()) continue;
      for (const std::string& name : fs_detail::unreferenced_data_files(fs, s.path)) {
        staging.push_back(step_dir_name(s.step) + "/" + name);
      }
    }
  }
  std::optional<int64_t> latest;
  uint64_t total = 0, complete = 0;
  for (const StepInfo& s : steps) {
    total += s.bytes;
    if (s.complete()) {
      ++complete;
      latest = s.step;
    }
  }

  if (args.json) {
    Json j;
    j.begin_object();
    j.key("root").value(root);
    j.key("steps").begin_array();
    for (const StepInfo& s : steps) {
      j.begin_object();
      j.key("step").value(s.step);
      j.key("path").value(s.path);
      j.key("state").value(state_name(s.state));
      j.key("complete").value(s.complete());
      j.key("bytes").value(s.bytes);
      j.key("mtime").value(s.mtime_seconds);
      j.key("modified").value(human_time(s.mtime_seconds));
      j.end_object();
    }
    j.end_array();
    j.key("latest_complete_step");
    if (latest) {
      j.value(*latest);
    } else {
      j.null();
    }
    j.key("total_bytes").value(total);
    j.key("leftovers").begin_array();
    for (const auto& n : staging) j.value(n);
    j.end_array();
    j.end_object();
    std::fputs(j.str().c_str(), stdout);
    return kExitOk;
  }

  if (steps.empty()) {
    std::printf("no checkpoint steps under %s\n", root.c_str());
  } else {
    Table t({"STEP", "DIRECTORY", "STATE", "SIZE", "MODIFIED"}, {true, false, false, true, false});
    for (const StepInfo& s : steps) {
      t.add({std::to_string(s.step), step_dir_name(s.step), std::string(state_name(s.state)), human_bytes(s.bytes),
             human_time(s.mtime_seconds)});
    }
    std::fputs(t.render().c_str(), stdout);
    std::printf("\n%zu step%s (%llu complete), %s in all; latest complete step: %s\n", steps.size(),
                steps.size() == 1 ? "" : "s", static_cast<unsigned long long>(complete), human_bytes(total).c_str(),
                latest ? std::to_string(*latest).c_str() : "none");
  }
  if (!staging.empty()) {
    std::printf("left by interrupted saves:");
    for (const auto& n : staging) std::printf(" %s", n.c_str());
    std::printf("\n(CheckpointManager::cleanup() removes them and incomplete steps)\n");
  }
  return kExitOk;
}

}  // namespace dcpp::cli
