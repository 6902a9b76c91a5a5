#include "storage/fs/object_commit.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/fs/fs_common.h"

namespace dcpp::fs_detail {
namespace {

bool all_of_class(const std::string& s, size_t begin, size_t end, bool hex) {
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(begin), s.begin() + static_cast<std::ptrdiff_t>(end),
                     [&](char c) { return (c >= '0' && c <= '9') || (hex && c >= 'a' && c <= 'f'); });
}

}  // namespace

uint64_t new_save_token() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

std::string per_save_data_file_name(int rank, uint64_t token) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "data-%05d-%s.bin", rank, hex64(token).c_str());
  return buf;
}

bool is_data_file_name(const std::string& name) {
  if (name.size() < 10 || name.compare(0, 5, "data-") != 0 || name.compare(name.size() - 4, 4, ".bin") != 0) {
    return false;
  }
  const size_t end = name.size() - 4;
  const size_t dash = name.find('-', 5);
  if (dash == std::string::npos || dash > end) return all_of_class(name, 5, end, false) && end > 5;
  return dash > 5 && all_of_class(name, 5, dash, false) && end - dash - 1 == 16 && all_of_class(name, dash + 1, end, true);
}

std::vector<std::string> referenced_files(const Metadata& metadata) {
  std::set<std::string> files;
  for (const auto& [key, t] : metadata.tensors) {
    for (const auto& c : t.chunks) {
      if (!c.location.file.empty()) files.insert(c.location.file);
    }
  }
  for (const auto& [key, v] : metadata.values) {
    if (!v.location.file.empty()) files.insert(v.location.file);
  }
  return {files.begin(), files.end()};
}

std::vector<std::string> unreferenced_data_files(FileSystem& fs, const std::string& dir) {
  std::vector<std::string> keep;
  if (fs.file_type(join_path(dir, std::string(kMetadataFileName))) == FileType::kRegular) {
    keep = referenced_files(read_fs_metadata(fs, dir));
  }
  std::vector<std::string> out;
  for (const std::string& name : fs.list_dir(dir)) {
    if (is_data_file_name(name) && !std::binary_search(keep.begin(), keep.end(), name)) out.push_back(name);
  }
  return out;
}

void commit_metadata_object(FileSystem& fs, const std::string& dir, const std::vector<std::byte>& bytes,
                            bool exclusive) {
  std::unique_ptr<WritableFile> f =
      fs.open_write(join_path(dir, std::string(kMetadataFileName)), {.exclusive = exclusive});
  f->write_all(bytes.data(), bytes.size(), 0);
  f->close();
}

void remove_unreferenced_data_files(FileSystem& fs, const std::string& dir, const Metadata& metadata) noexcept {
  try {
    const std::vector<std::string> keep = referenced_files(metadata);
    for (const std::string& name : fs.list_dir(dir)) {
      if (is_data_file_name(name) && !std::binary_search(keep.begin(), keep.end(), name)) {
        fs.remove(join_path(dir, name));
      }
    }
  } catch (...) {
    // Housekeeping after the commit: the new checkpoint stands either way.
  }
}

}  // namespace dcpp::fs_detail
