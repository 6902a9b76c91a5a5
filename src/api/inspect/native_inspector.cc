// The native dcpp format as the tools see it: probe, summary and a full
// verification that reads every stored byte once (docs/format.md).
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "api/inspect/inspect_support.h"
#include "dcpp/inspect.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/io.h"
#include "dcpp/s3_file_system.h"
#include "storage/fs/block_codec.h"

namespace dcpp {
namespace {

const std::string kMetaName(kMetadataFileName);

uint64_t block_count(uint64_t length, uint64_t block_size) {
  return length / block_size + (length % block_size != 0 ? 1 : 0);
}

std::vector<FileSummary> list_files(FileSystem& fs, const std::string& dir, uint64_t& total) {
  std::vector<FileSummary> files;
  total = 0;
  for (const std::string& name : fs.list_dir(dir)) {
    const std::string p = join(dir, name);
    if (fs.file_type(p) != FileType::kRegular) continue;
    FileSummary f{name, fs.file_size(p)};
    total += f.bytes;
    files.push_back(std::move(f));
  }
  return files;
}

// One stored item (a tensor chunk or a value) as verification walks it.
struct Item {
  std::string key;
  std::string what;  // "chunk at [0, 6]" or "value"
  const StorageLocation* location;
};

std::string describe(const Item& item) { return "key " + quoted(item.key) + " (" + item.what + ")"; }

class NativeInspector final : public FormatInspector {
 public:
  std::string name() const override { return std::string(kFsFormatName); }
  bool checksummed() const override { return true; }

  ProbeResult probe(const std::string& path, std::string& why) const override {
    const FileSystemPtr fs_holder = file_system_for_path(path);
    FileSystem& fs = *fs_holder;
    switch (checkpoint_state(fs, path)) {
      case CheckpointState::kComplete: return ProbeResult::kComplete;
      case CheckpointState::kIncomplete:
        why = "it has data files but no " + kMetaName + ": a save did not finish (or the metadata was removed)";
        return ProbeResult::kIncomplete;
      default: return ProbeResult::kNo;
    }
  }

  CheckpointSummary summarize(const std::string& path, bool complete) const override {
    const FileSystemPtr fs_holder = file_system_for_path(path);
    FileSystem& fs = *fs_holder;
    CheckpointSummary s;
    s.path = path;
    s.format = name();
    s.complete = complete;
    s.files = list_files(fs, path, s.total_bytes);
    if (!complete) {
      s.incomplete_reason = "no " + kMetaName + ": a save did not finish (or the metadata was removed)";
      for (const auto& f : s.files) s.data_bytes += f.bytes;
      return s;
    }
    const Metadata md = read_fs_metadata(fs, path);
    s.format_version = md.format_version;
    s.writer_version = md.dcpp_version;
    s.world_size = md.world_size;
    s.block_size = md.block_size;
    s.data_bytes = md.total_bytes();
    s.keys = summarize_keys(md);
    return s;
  }

  std::optional<std::string> metadata_json(const std::string& path) const override {
    return metadata_to_json(read_fs_metadata(*file_system_for_path(path), path), true);
  }

  VerifyTotals verify(const std::string& path, bool complete, VerifyReporter& rep) const override {
    const FileSystemPtr fs_holder = file_system_for_path(path);
    FileSystem& fs = *fs_holder;
    VerifyTotals totals;
    const std::string meta_path = join(path, kMetaName);
    if (!complete) {
      rep.problem(meta_path, -1,
                  "missing: the checkpoint is incomplete (a save did not finish, or the metadata was removed); "
                  "its data cannot be checked without it");
      return totals;
    }
    Metadata md;
    try {
      md = read_fs_metadata(fs, path);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kIo) {
        rep.io_error(e.message());
      } else {
        // Damaged metadata (self-checksum, structure) or a newer version:
        // nothing else can be trusted or located without it.
        rep.problem(meta_path, -1, e.message());
      }
      return totals;
    }
    totals.tensors = md.tensors.size();
    totals.values = md.values.size();

    std::vector<Item> items;
    check_structure(md, meta_path, rep, items, totals);
    check_files_and_data(fs, path, md, items, rep, totals);
    return totals;
  }

 private:
  // Every invariant the metadata alone can show: chunks in bounds, no
  // overlap, full coverage, byte lengths, checksum counts, safe file names,
  // aligned offsets. Collects the items whose bytes can then be read.
  static void check_structure(const Metadata& md, const std::string& meta_path, VerifyReporter& rep,
                              std::vector<Item>& items, VerifyTotals& totals) {
    auto location_ok = [&](const std::string& key, const std::string& what, const StorageLocation& loc) {
      const std::string who = "key " + quoted(key) + " (" + what + ")";
      bool ok = true;
      if (loc.byte_length > 0) {
        try {
          validate_data_file_name(key, loc.file);
        } catch (const Error& e) {
          rep.problem(meta_path, -1, e.message());
          ok = false;
        }
        if (loc.byte_offset % kIoAlignment != 0) {
          rep.problem(meta_path, -1,
                      who + " starts at byte offset " + std::to_string(loc.byte_offset) + " of " + quoted(loc.file) +
                          ", which is not a multiple of " + std::to_string(kIoAlignment));
        }
      }
      if (loc.block_checksums.size() != block_count(loc.byte_length, md.block_size)) {
        rep.problem(meta_path, -1,
                    who + " has " + std::to_string(loc.block_checksums.size()) + " block checksums for " +
                        std::to_string(loc.byte_length) + " bytes in blocks of " + std::to_string(md.block_size));
        ok = false;
      }
      return ok;
    };

    for (const auto& [key, t] : md.tensors) {
      std::vector<const ChunkMeta*> boxes;  // in bounds, non-empty
      bool shape_ok = true;
      for (int64_t s : t.global_shape) shape_ok = shape_ok && s >= 0;
      if (!shape_ok) {
        rep.problem(meta_path, -1,
                    "key " + quoted(key) + " has a negative dimension in its shape " + shape_to_string(t.global_shape));
        continue;
      }
      for (const ChunkMeta& c : t.chunks) {
        ++totals.chunks;
        const std::string what = "chunk at " + shape_to_string(c.offsets);
        const std::string who = "key " + quoted(key) + " (" + what + ")";
        uint64_t numel = 0;
        const ChunkCheck check = check_chunk_geometry(who, t, c, /*raw_bytes=*/true, meta_path, rep, numel);
        if (check == ChunkCheck::kMalformed) continue;
        const bool in_bounds = check == ChunkCheck::kUsable;
        const bool loc_ok = location_ok(key, what, c.location);
        if (in_bounds && numel > 0) boxes.push_back(&c);
        if (loc_ok && c.location.byte_length > 0) items.push_back({key, what, &c.location});
      }
      check_chunk_tiling(key, t.global_shape, boxes, meta_path, rep);
    }
    for (const auto& [key, v] : md.values) {
      if (location_ok(key, "value", v.location) && v.location.byte_length > 0) {
        items.push_back({key, "value", &v.location});
      }
    }
  }

  // Files present and long enough, items not overlapping inside a file, zero
  // padding, then every block's checksum: each stored byte is read once.
  static void check_files_and_data(FileSystem& fs, const std::string& dir, const Metadata& md,
                                   const std::vector<Item>& items, VerifyReporter& rep, VerifyTotals& totals) {
    std::map<std::string, std::vector<const Item*>> by_file;
    for (const Item& item : items) by_file[item.location->file].push_back(&item);
    totals.files = by_file.size();

    // Files in the directory the metadata does not name: a complete
    // checkpoint holds nothing else (docs/format.md §1).
    std::set<std::string> named;
    for (const auto& [file, list] : by_file) named.insert(file);
    for (const std::string& name : fs.list_dir(dir)) {
      if (name == kMetaName || named.count(name)) continue;
      rep.problem(join(dir, name), -1, "not named by the metadata: a complete dcpp checkpoint holds no other files");
    }

    std::vector<std::pair<std::string, std::vector<const Item*>>> files;  // path, items in offset order
    uint64_t total = 0;
    for (auto& [file, list] : by_file) {
      const std::string file_path = join(dir, file);
      std::sort(list.begin(), list.end(),
                [](const Item* a, const Item* b) { return a->location->byte_offset < b->location->byte_offset; });
      FileType type;
      try {
        type = fs.file_type(file_path);
      } catch (const Error& e) {
        rep.io_error(e.message());
        continue;
      }
      if (type != FileType::kRegular) {
        rep.problem(file_path, -1,
                    std::string(type == FileType::kNone ? "missing" : "not a regular file") + ": the metadata puts " +
                        std::to_string(list.size()) + " item(s) in it, the first " + describe(*list.front()));
        continue;
      }
      const uint64_t size = fs.file_size(file_path);
      std::vector<const Item*> readable;
      uint64_t prev_end = 0;
      const Item* prev = nullptr;
      for (const Item* item : list) {
        const StorageLocation& loc = *item->location;
        const uint64_t end = loc.byte_offset + loc.stored_length();
        if (prev != nullptr && loc.byte_offset < prev_end) {
          rep.problem(file_path, static_cast<int64_t>(loc.byte_offset),
                      describe(*item) + " overlaps the bytes of " + describe(*prev) + " (which end at byte offset " +
                          std::to_string(prev_end) + ")");
        }
        if (end > size) {
          rep.problem(file_path, static_cast<int64_t>(std::max(size, loc.byte_offset)),
                      "file too short: it is " + std::to_string(size) + " bytes, but " + describe(*item) +
                          " needs bytes [" + std::to_string(loc.byte_offset) + ", " + std::to_string(end) + ")");
        } else {
          readable.push_back(item);
          total += loc.byte_length;
        }
        if (end > prev_end) {
          prev_end = end;
          prev = item;
        }
      }
      // A file of another checkpoint (an incremental save's reference) holds
      // that checkpoint's other items too.
      if (size > prev_end && !list.empty() && !referenced_checkpoint(file)) {
        rep.problem(file_path, static_cast<int64_t>(prev_end),
                    std::to_string(size - prev_end) + " bytes after the end of the last item (a data file ends "
                                                      "at the end of its last item)");
      }
      files.emplace_back(file_path, std::move(readable));
    }

    rep.begin_data(total);
    const uint64_t bs = md.block_size;
    // Several blocks per read keep the syscall count low on small blocks.
    const uint64_t batch_blocks = std::max<uint64_t>(1, (8u << 20) / bs);
    AlignedBuffer buffer(static_cast<size_t>(std::min<uint64_t>(batch_blocks * bs, std::max<uint64_t>(total, 1))));
    AlignedBuffer padding(kIoAlignment);
    for (const auto& [file_path, list] : files) {
      std::unique_ptr<RandomAccessFile> file;
      try {
        file = fs.open_read(file_path);
      } catch (const Error& e) {
        rep.io_error(e.message());
        continue;
      }
      uint64_t pos = 0;  // end of the previous item
      for (const Item* item : list) {
        const StorageLocation& loc = *item->location;
        try {
          // The gap before the item must be zeros (it is at most 4095 bytes in a valid file).
          if (loc.byte_offset > pos && loc.byte_offset - pos < kIoAlignment) {
            const size_t gap = static_cast<size_t>(loc.byte_offset - pos);
            const size_t got = file->read_full(padding.data(), gap, pos);
            for (size_t i = 0; i < got; ++i) {
              if (padding.data()[i] != std::byte{0}) {
                rep.problem(file_path, static_cast<int64_t>(pos + i),
                            "non-zero padding byte before " + describe(*item) + " (padding must be zeros)");
                break;
              }
            }
          }
          const uint64_t nblocks = block_count(loc.byte_length, bs);
          if (!loc.stored_blocks.empty()) {
            check_encoded_item(*file, file_path, *item, bs, rep, totals);
            nblocks_done(loc, pos);
            continue;
          }
          for (uint64_t b0 = 0; b0 < nblocks; b0 += batch_blocks) {
            const uint64_t b1 = std::min(nblocks, b0 + batch_blocks);
            const uint64_t begin = b0 * bs;
            const uint64_t length = std::min(b1 * bs, loc.byte_length) - begin;
            const size_t got = file->read_full(buffer.data(), static_cast<size_t>(length), loc.byte_offset + begin);
            for (uint64_t b = b0; b < b1; ++b) {
              const uint64_t at = b * bs - begin;
              const uint64_t n = std::min(bs, loc.byte_length - b * bs);
              const uint64_t block_offset = loc.byte_offset + b * bs;
              if (at + n > got) {
                rep.problem(file_path, static_cast<int64_t>(loc.byte_offset + begin + got),
                            "file ended while reading block " + std::to_string(b) + " of " + describe(*item));
                break;
              }
              const uint64_t sum = XXH3_64bits(buffer.data() + at, static_cast<size_t>(n));
              if (sum != loc.block_checksums[b]) {
                char hex[64];
                std::snprintf(hex, sizeof hex, "stored %016llx, computed %016llx",
                              static_cast<unsigned long long>(loc.block_checksums[b]),
                              static_cast<unsigned long long>(sum));
                rep.problem(file_path, static_cast<int64_t>(block_offset),
                            "checksum mismatch in the " + std::to_string(n) + "-byte block starting here (block " +
                                std::to_string(b) + " of " + describe(*item) + "): " + hex);
              }
            }
            totals.bytes_verified += std::min<uint64_t>(got, length);
            rep.data_verified(length);
            if (got < length) break;
          }
        } catch (const Error& e) {
          rep.io_error(e.message());
        }
        pos = std::max(pos, loc.byte_offset + loc.byte_length);
      }
    }
  }

  static void nblocks_done(const StorageLocation& loc, uint64_t& pos) {
    pos = std::max(pos, loc.byte_offset + loc.stored_length());
  }

  // An item whose blocks are stored encoded (format version 2): each block
  // is read, decoded and checked against its checksum of the decoded bytes.
  static void check_encoded_item(RandomAccessFile& file, const std::string& file_path, const Item& item, uint64_t bs,
                                 VerifyReporter& rep, VerifyTotals& totals) {
    const StorageLocation& loc = *item.location;
    fs_detail::BlockDecoder decoder;
    std::vector<std::byte> stored, decoded(static_cast<size_t>(std::min(bs, loc.byte_length)));
    for (uint64_t b = 0; b < loc.stored_blocks.size(); ++b) {
      const StoredBlock& sb = loc.stored_blocks[b];
      const uint64_t n = std::min(bs, loc.byte_length - b * bs);
      const uint64_t where = loc.byte_offset + sb.offset;
      stored.resize(static_cast<size_t>(sb.length));
      const size_t got = file.read_full(stored.data(), stored.size(), where);
      if (got < sb.length) {
        rep.problem(file_path, static_cast<int64_t>(where + got),
                    "file ended while reading block " + std::to_string(b) + " of " + describe(item));
        return;
      }
      if (sb.encoding == 0) {
        std::memcpy(decoded.data(), stored.data(), static_cast<size_t>(n));
      } else {
        const std::string why = decoder.decode(stored.data(), stored.size(), decoded.data(), static_cast<size_t>(n));
        if (!why.empty()) {
          rep.problem(file_path, static_cast<int64_t>(where),
                      "encoded block " + std::to_string(b) + " of " + describe(item) + " (" +
                          std::to_string(sb.length) + " stored bytes) does not decode: " + why);
          rep.data_verified(n);
          continue;
        }
      }
      const uint64_t sum = XXH3_64bits(decoded.data(), static_cast<size_t>(n));
      if (sum != loc.block_checksums[b]) {
        char hex[64];
        std::snprintf(hex, sizeof hex, "stored %016llx, computed %016llx",
                      static_cast<unsigned long long>(loc.block_checksums[b]), static_cast<unsigned long long>(sum));
        rep.problem(file_path, static_cast<int64_t>(where),
                    "checksum mismatch in the block stored here (block " + std::to_string(b) + " of " +
                        describe(item) + ", " + std::to_string(n) + " bytes decoded from " +
                        std::to_string(sb.length) + " stored): " + hex);
      }
      totals.bytes_verified += n;
      rep.data_verified(n);
    }
  }
};

}  // namespace

std::unique_ptr<FormatInspector> make_native_inspector() { return std::make_unique<NativeInspector>(); }


}  // namespace dcpp
