// Format detection: which registered inspector claims a path (dcpp/inspect.h).
#include "dcpp/inspect.h"

#include "api/inspect/inspect_support.h"

#include <algorithm>

#include "dcpp/checkpoint_manager.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/s3_file_system.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"

namespace dcpp {

const std::vector<std::unique_ptr<FormatInspector>>& format_inspectors() {
  // Probed in this order; the first format that claims a path wins.
  static const std::vector<std::unique_ptr<FormatInspector>> formats = [] {
    std::vector<std::unique_ptr<FormatInspector>> v;
    v.push_back(make_native_inspector());
    v.push_back(make_torch_dcp_inspector());
    v.push_back(make_safetensors_inspector());
    return v;
  }();
  return formats;
}

namespace {




std::string known_formats() {
  std::string names;
  for (const auto& f : format_inspectors()) names += (names.empty() ? "" : ", ") + f->name();
  return names;
}

}  // namespace

Detection detect_checkpoint(const std::string& input) {
  const FileSystemPtr fs_holder = file_system_for_path(input);
    FileSystem& fs = *fs_holder;
  Detection d;
  d.path = input;
  while (d.path.size() > 1 && d.path.back() == '/') d.path.pop_back();
  FileType type = fs.file_type(d.path);
  if (type == FileType::kNone) {
    d.kind = Detection::kMissing;
    d.message = quoted(d.path) + " does not exist";
    return d;
  }
  // A metadata file (native, PyTorch DCP, the Hugging Face index) stands
  // for its checkpoint.
  const std::string base = base_name(d.path);
  if (type == FileType::kRegular &&
      (base == std::string(kMetadataFileName) || base == std::string(kTorchDcpMetadataName) ||
       base == std::string(kSafetensorsIndexName))) {
    d.path = parent_of(d.path);
    type = fs.file_type(d.path);
  }
  // One .safetensors file is a checkpoint of its own.
  const bool safetensors_file = type == FileType::kRegular && base.size() > 12 &&
                                base.compare(base.size() - 12, 12, ".safetensors") == 0;
  if (type != FileType::kDirectory && !safetensors_file) {
    d.kind = Detection::kNotCheckpoint;
    d.message = quoted(d.path) + " is not a checkpoint: it is " +
                (type == FileType::kRegular ? "a file" : "not a regular file or directory") +
                ", and the supported formats (" + known_formats() + ") are directories (or a single .safetensors file)";
    return d;
  }
  for (const auto& format : format_inspectors()) {
    std::string why;
    ProbeResult r = format->probe(d.path, why);
    if (r == ProbeResult::kNo) continue;
    d.kind = Detection::kFound;
    d.format = format.get();
    d.complete = r == ProbeResult::kComplete;
    d.message = why;
    return d;
  }
  d.kind = Detection::kNotCheckpoint;
  const std::vector<std::string> names = fs.list_dir(d.path);
  std::vector<std::string> steps;
  for (const auto& n : names) {
    if (parse_step_dir_name(n)) steps.push_back(n);
  }
  if (!steps.empty()) {
    d.message = quoted(d.path) + " is not a checkpoint: it is a checkpoint root holding " +
                std::to_string(steps.size()) + " step director" + (steps.size() == 1 ? "y" : "ies") + " (" +
                steps.front() + (steps.size() > 1 ? " ... " + steps.back() : "") + "); list them with `dcpp ls " +
                d.path + "`, inspect one with `dcpp inspect " + d.path + "/" + steps.back() + "`";
  } else if (names.empty()) {
    d.message = quoted(d.path) + " is not a checkpoint: it is an empty directory";
  } else {
    d.message = quoted(d.path) + " is not a checkpoint: no known format (" + known_formats() +
                ") recognises it (a dcpp checkpoint is a directory holding " + std::string(kMetadataFileName) +
                " and data-NNNNN.bin files, a PyTorch DCP one holds .metadata and *.distcp files, a safetensors "
                "one holds *.safetensors files)";
  }
  return d;
}

}  // namespace dcpp
