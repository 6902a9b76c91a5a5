// The foreign checkpoint formats as the tools see them: safetensors (both
// Hugging Face layouts, or one .safetensors file) and PyTorch DCP. One
// implementation serves both: the storage layer's reader turns either into a
// dcpp::Metadata (tensors, chunks, byte locations), and CheckpointReader
// reads whole tensors through it, which runs every check those readers make
// (headers, archives, offsets against file sizes). These formats have no
// block checksums, so verify checks structure and readability, not content.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "api/inspect/inspect_support.h"
#include "dcpp/inspect.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"

namespace dcpp {
namespace {


bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// Where a checkpoint's files live: its directory, or the directory of a
// single .safetensors file (whose chunk locations name the file alone).
struct Place {
  std::string dir;
  std::vector<std::string> names;  // the regular files that make up the checkpoint
};

Place place_of(FileSystem& fs, const std::string& path) {
  Place p;
  if (fs.file_type(path) == FileType::kRegular) {
    p.dir = parent_of(path);
    p.names.push_back(base_name(path));
    return p;
  }
  p.dir = path;
  for (const std::string& name : fs.list_dir(path)) {
    if (fs.file_type(join(path, name)) == FileType::kRegular) p.names.push_back(name);
  }
  std::sort(p.names.begin(), p.names.end());
  return p;
}

// The file and byte offset an Error's message names, so that verify can
// report them in its own fields: the longest of the checkpoint's file names
// that the message mentions, and the number after "byte offset" or "offset".
void locate(const std::string& message, const Place& place, std::string& file, int64_t& offset) {
  file.clear();
  offset = -1;
  size_t best = 0;
  for (const std::string& name : place.names) {
    if (name.size() > best && message.find(name) != std::string::npos) {
      best = name.size();
      file = join(place.dir, name);
    }
  }
  for (std::string_view marker : {"byte offset ", "offset "}) {
    const size_t at = message.find(marker);
    if (at == std::string::npos) continue;
    size_t i = at + marker.size();
    if (i >= message.size() || !std::isdigit(static_cast<unsigned char>(message[i]))) continue;
    uint64_t v = 0;
    while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])) && v < (1ull << 59)) {
      v = v * 10 + static_cast<uint64_t>(message[i] - '0');
      ++i;
    }
    offset = static_cast<int64_t>(v);
    break;
  }
}

class ForeignInspector final : public FormatInspector {
 public:
  explicit ForeignInspector(CheckpointFormat kind) : kind_(kind) {}

  std::string name() const override { return std::string(checkpoint_format_name(kind_)); }
  bool checksummed() const override { return false; }

  ProbeResult probe(const std::string& path, std::string&) const override {
    return detect_checkpoint_format(path) == kind_ ? ProbeResult::kComplete : ProbeResult::kNo;
  }

  CheckpointSummary summarize(const std::string& path, bool complete) const override {
    FileSystem& fs = *default_file_system();
    CheckpointSummary s;
    s.path = path;
    s.format = name();
    s.complete = complete;
    const Place place = place_of(fs, path);
    s.layout = layout_of(place);
    for (const std::string& n : place.names) {
      FileSummary f{n, fs.file_size(join(place.dir, n))};
      s.total_bytes += f.bytes;
      s.files.push_back(std::move(f));
    }
    const Metadata md = open_storage_reader(path)->read_metadata();
    s.writer_version = md.dcpp_version;
    s.keys = summarize_keys(md);
    for (const KeySummary& k : s.keys) s.data_bytes += k.bytes;
    return s;
  }

  std::optional<std::string> metadata_json(const std::string& path) const override {
    return metadata_to_json(open_storage_reader(path)->read_metadata(), true);
  }

  VerifyTotals verify(const std::string& path, bool, VerifyReporter& rep) const override {
    FileSystem& fs = *default_file_system();
    VerifyTotals totals;
    Place place;
    try {
      place = place_of(fs, path);
    } catch (const Error& e) {
      rep.io_error(e.message());
      return totals;
    }
    // Problems the metadata alone shows are attributed to the file that
    // describes the layout: `.metadata`, the index, or the checkpoint itself.
    const std::string meta_path = meta_path_of(path, place);
    auto report = [&](const Error& e) {
      if (e.code() == ErrorCode::kIo) {
        rep.io_error(e.message());
        return;
      }
      std::string file;
      int64_t offset;
      locate(e.message(), place, file, offset);
      rep.problem(file.empty() ? meta_path : file, offset, e.message());
    };

    Metadata md;
    try {
      md = open_storage_reader(path)->read_metadata();
    } catch (const Error& e) {
      // A damaged header or `.metadata`: nothing can be located without it.
      report(e);
      return totals;
    }
    totals.tensors = md.tensors.size();
    totals.values = md.values.size();

    std::map<std::string, uint64_t> file_ends;  // file → end of the last byte the metadata puts in it
    check_structure(md, meta_path, rep, file_ends);
    std::set<std::string> bad_files;
    check_files(fs, place, file_ends, rep, bad_files);
    totals.files = file_ends.size();

    // Read every tensor (and value) once through the format's own reader.
    uint64_t total = 0;
    for (const auto& [key, t] : md.tensors) total += tensor_bytes(t);
    rep.begin_data(total);
    std::unique_ptr<CheckpointReader> reader;
    try {
      reader = std::make_unique<CheckpointReader>(open_storage_reader(path));
    } catch (const Error& e) {
      report(e);
      return totals;
    }
    for (const auto& [key, t] : md.tensors) {
      const uint64_t bytes = tensor_bytes(t);
      bool skip = false;  // a file already reported missing or short would only repeat that problem
      uint64_t stored = 0;
      for (const auto& c : t.chunks) {
        if (c.location.byte_length == 0) continue;
        ++stored;
        skip = skip || bad_files.count(c.location.file) != 0;
      }
      if (!skip) {
        try {
          Tensor whole = reader->read(key);
          totals.bytes_verified += bytes;
        } catch (const Error& e) {
          report(e);
        }
      }
      totals.chunks += stored;
      rep.data_verified(bytes);
    }
    for (const auto& [key, v] : md.values) {
      if (bad_files.count(v.location.file)) continue;
      try {
        (void)reader->value(key);
      } catch (const Error& e) {
        report(e);
      }
    }
    return totals;
  }

 private:
  static uint64_t tensor_bytes(const TensorMeta& t) {
    uint64_t n = dtype_size(t.dtype);
    for (int64_t d : t.global_shape) n *= static_cast<uint64_t>(std::max<int64_t>(d, 0));
    return n;
  }

  std::string layout_of(const Place& place) const {
    if (kind_ != CheckpointFormat::kSafetensors) return {};
    const auto& n = place.names;
    if (std::find(n.begin(), n.end(), std::string(kSafetensorsIndexName)) != n.end()) return "full";
    if (std::any_of(n.begin(), n.end(), [](const std::string& s) { return starts_with(s, "shard-"); })) {
      return "sharded";
    }
    return n.size() == 1 ? "single file" : "plain";
  }

  std::string meta_path_of(const std::string& path, const Place& place) const {
    const auto& n = place.names;
    if (kind_ == CheckpointFormat::kTorchDcp) return join(path, std::string(kTorchDcpMetadataName));
    if (std::find(n.begin(), n.end(), std::string(kSafetensorsIndexName)) != n.end()) {
      return join(path, std::string(kSafetensorsIndexName));
    }
    return path;
  }

  // Chunks inside the global shape, of the right byte length where the
  // format stores raw bytes (safetensors; a DCP item is a whole torch.save
  // archive, longer than its data), no overlaps, full coverage.
  void check_structure(const Metadata& md, const std::string& meta_path, VerifyReporter& rep,
                       std::map<std::string, uint64_t>& file_ends) const {
    const bool raw_bytes = kind_ == CheckpointFormat::kSafetensors;
    for (const auto& [key, t] : md.tensors) {
      std::vector<const ChunkMeta*> boxes;
      for (const ChunkMeta& c : t.chunks) {
        const std::string who = "key " + quoted(key) + " (chunk at " + shape_to_string(c.offsets) + " in " +
                                quoted(c.location.file) + ")";
        if (c.location.byte_length > 0) {  // empty chunks (uneven sharding) store nothing
          auto& end = file_ends[c.location.file];
          end = std::max(end, c.location.byte_offset + c.location.byte_length);
        }
        uint64_t numel = 0;
        const ChunkCheck check = check_chunk_geometry(who, t, c, raw_bytes, meta_path, rep, numel);
        if (check == ChunkCheck::kMalformed) continue;
        const bool in_bounds = check == ChunkCheck::kUsable;
        if (in_bounds && numel > 0) boxes.push_back(&c);
      }
      check_chunk_tiling(key, t.global_shape, std::move(boxes), meta_path, rep);
    }
    for (const auto& [key, v] : md.values) {
      if (v.location.file.empty()) continue;
      // Safetensors values live as JSON inside a header: only the file must exist.
      auto& end = file_ends[v.location.file];
      if (!raw_bytes) end = std::max(end, v.location.byte_offset + v.location.byte_length);
    }
  }

  // Every file the metadata names exists and is long enough for what it holds.
  static void check_files(FileSystem& fs, const Place& place, const std::map<std::string, uint64_t>& file_ends,
                          VerifyReporter& rep, std::set<std::string>& bad_files) {
    for (const auto& [file, end] : file_ends) {
      const std::string file_path = join(place.dir, file);
      try {
        const FileType type = fs.file_type(file_path);
        if (type != FileType::kRegular) {
          rep.problem(file_path, -1,
                      std::string(type == FileType::kNone ? "missing" : "not a regular file") +
                          ": the checkpoint's metadata puts data in it");
          bad_files.insert(file);
          continue;
        }
        const uint64_t size = fs.file_size(file_path);
        if (size < end) {
          rep.problem(file_path, static_cast<int64_t>(size),
                      "file too short: it is " + std::to_string(size) + " bytes, the metadata puts data up to byte " +
                          std::to_string(end));
          bad_files.insert(file);
        }
      } catch (const Error& e) {
        rep.io_error(e.message());
        bad_files.insert(file);
      }
    }
  }

  CheckpointFormat kind_;
};

}  // namespace

std::unique_ptr<FormatInspector> make_safetensors_inspector() {
  return std::make_unique<ForeignInspector>(CheckpointFormat::kSafetensors);
}
std::unique_ptr<FormatInspector> make_torch_dcp_inspector() {
  return std::make_unique<ForeignInspector>(CheckpointFormat::kTorchDcp);
}

}  // namespace dcpp
