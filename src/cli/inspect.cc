// `dcpp inspect`: what a checkpoint holds, as a table or as JSON.
#include <cstdio>

#include "cli/cli.h"
#include "dcpp/inspect.h"

namespace dcpp::cli {
namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ",") + n;
  return s;
}

void print_json(const CheckpointSummary& s, const std::optional<std::string>& metadata) {
  Json j;
  j.begin_object();
  j.key("path").value(s.path);
  j.key("format").value(s.format);
  if (!s.layout.empty()) j.key("layout").value(s.layout);
  j.key("format_version").value(static_cast<uint64_t>(s.format_version));
  j.key("writer_version").value(s.writer_version);
  j.key("state").value(s.complete ? "complete" : "incomplete");
  j.key("complete").value(s.complete);
  if (!s.complete) j.key("incomplete_reason").value(s.incomplete_reason);
  j.key("world_size").value(s.world_size);
  j.key("block_size").value(s.block_size);
  j.key("data_bytes").value(s.data_bytes);
  j.key("total_bytes").value(s.total_bytes);
  j.key("files").begin_array();
  for (const auto& f : s.files) {
    j.begin_object().key("name").value(f.name).key("bytes").value(f.bytes).end_object();
  }
  j.end_array();
  j.key("tensors").begin_array();
  for (const auto& k : s.keys) {
    if (!k.is_tensor) continue;
    j.begin_object();
    j.key("key").value(k.key);
    j.key("dtype").value(k.type);
    j.key("shape").shape(k.shape);
    j.key("chunks").value(k.chunks);
    j.key("bytes").value(k.bytes);
    j.key("files").begin_array();
    for (const auto& f : k.files) j.value(f);
    j.end_array();
    j.end_object();
  }
  j.end_array();
  j.key("values").begin_array();
  for (const auto& k : s.keys) {
    if (k.is_tensor) continue;
    j.begin_object();
    j.key("key").value(k.key);
    j.key("kind").value(k.type);
    j.key("bytes").value(k.bytes);
    j.key("files").begin_array();
    for (const auto& f : k.files) j.value(f);
    j.end_array();
    j.end_object();
  }
  j.end_array();
  if (metadata) j.key("metadata").raw(*metadata);
  j.end_object();
  std::fputs(j.str().c_str(), stdout);
}

void print_text(const CheckpointSummary& s) {
  uint64_t tensors = 0, values = 0;
  for (const auto& k : s.keys) (k.is_tensor ? tensors : values)++;
  if (s.complete) {
    Table t({"KEY", "TYPE", "SHAPE", "CHUNKS", "BYTES", "FILES"}, {false, false, false, true, true, false});
    for (const auto& k : s.keys) {
      t.add({k.key, k.type, k.is_tensor ? shape_text(k.shape) : "(value)", std::to_string(k.chunks),
             human_bytes(k.bytes), join_names(k.files)});
    }
    std::fputs(t.render().c_str(), stdout);
    std::fputs("\n", stdout);
  }
  std::printf("checkpoint   %s\n", s.path.c_str());
  if (s.complete) {
    const std::string written_by = s.writer_version.empty() ? "" : " (written by dcpp " + s.writer_version + ")";
    if (s.format_version != 0) {
      std::printf("format       %s, version %u%s\n", s.format.c_str(), s.format_version, written_by.c_str());
    } else {
      std::printf("format       %s%s%s\n", s.format.c_str(),
                  s.layout.empty() ? "" : (", " + s.layout + " layout").c_str(), written_by.c_str());
    }
    std::printf("state        complete\n");
    if (s.world_size > 0) {
      std::printf("world size   %lld rank%s at save\n", static_cast<long long>(s.world_size),
                  s.world_size == 1 ? "" : "s");
    } else {
      std::printf("world size   not recorded in this format\n");
    }
    std::printf("keys         %llu tensor%s, %llu value%s\n", static_cast<unsigned long long>(tensors),
                tensors == 1 ? "" : "s", static_cast<unsigned long long>(values), values == 1 ? "" : "s");
    if (s.block_size != 0) {
      std::printf("data         %s (%llu bytes), checksummed in blocks of %s\n", human_bytes(s.data_bytes).c_str(),
                  static_cast<unsigned long long>(s.data_bytes), human_bytes(s.block_size).c_str());
    } else {
      std::printf("data         %s (%llu bytes), no checksums in this format\n", human_bytes(s.data_bytes).c_str(),
                  static_cast<unsigned long long>(s.data_bytes));
    }
  } else {
    std::printf("format       %s\n", s.format.c_str());
    std::printf("state        INCOMPLETE: %s\n", s.incomplete_reason.c_str());
  }
  std::printf("total size   %s in %zu file%s\n", human_bytes(s.total_bytes).c_str(), s.files.size(),
              s.files.size() == 1 ? "" : "s");
  for (const auto& f : s.files) std::printf("  %-20s %10s\n", f.name.c_str(), human_bytes(f.bytes).c_str());
}

}  // namespace

int run_inspect(const InspectArgs& args) {
  Detection d = detect_checkpoint(args.path);
  if (d.kind != Detection::kFound) {
    std::fprintf(stderr, "dcpp inspect: %s\n", d.message.c_str());
    return kExitNotCheckpoint;
  }
  CheckpointSummary s = d.format->summarize(d.path, d.complete);
  std::optional<std::string> metadata;
  if (args.json && args.full && d.complete) metadata = d.format->metadata_json(d.path);
  if (args.json) {
    print_json(s, metadata);
  } else {
    print_text(s);
  }
  if (!d.complete) {
    std::fprintf(stderr, "dcpp inspect: %s is an incomplete checkpoint: %s\n", d.path.c_str(), d.message.c_str());
    return kExitProblems;
  }
  return kExitOk;
}

}  // namespace dcpp::cli
