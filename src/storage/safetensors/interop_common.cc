// Shared helpers of the interoperability storages (see interop_common.h).
#include "storage/safetensors/interop_common.h"

#include <algorithm>
#include <cstdio>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "io/paths.h"

namespace dcpp::interop {
namespace {

using paths::split_parent;

// Above this many bytes, a box read is split along its first dimension.
constexpr uint64_t kMaxSpanBytes = 16ull << 20;

}  // namespace

std::string join(const std::string& dir, const std::string& name) { return paths::join(dir, name); }

std::string quoted(const std::string& s) { return "'" + s + "'"; }

void prepare_staging(FileSystem& fs, const std::string& path, bool overwrite,
                     const std::function<bool(const std::string&)>& ours, const std::string& format_name) {
  const FileType type = fs.file_type(path);
  if (type != FileType::kNone) {
    if (type != FileType::kDirectory) {
      throw Error(ErrorCode::kInvalidArgument, quoted(path) + " exists and is not a directory; refusing to replace it");
    }
    const auto names = fs.list_dir(path);
    for (const auto& name : names) {
      if (!ours(name)) {
        throw Error(ErrorCode::kInvalidArgument, quoted(path) + " holds " + quoted(name) + ", which a " + format_name +
                                                     " save does not write; refusing to replace it");
      }
    }
    if (!names.empty() && !overwrite) {
      throw Error(ErrorCode::kInvalidArgument,
                  "a " + format_name + " checkpoint already exists at " + quoted(path) + " and overwrite is false");
    }
  }
  fs.create_directories(split_parent(path).first);
  const std::string staging = staging_path(path);
  fs.remove_all(staging);
  fs.mkdir(staging);
}

void commit_staging(FileSystem& fs, const std::string& path) {
  const std::string staging = staging_path(path);
  const auto [parent, name] = split_parent(path);
  fs.fsync_dir(staging);
  const FileType type = fs.file_type(path);
  if (type == FileType::kNone) {
    fs.rename(staging, path);
  } else if (fs.rename_exchange(staging, path)) {
    fs.remove_all(staging);
  } else {
    const std::string old = join(parent, "." + name + ".dcpp-old");
    fs.remove_all(old);
    fs.rename(path, old);
    fs.rename(staging, path);
    fs.fsync_dir(parent);
    fs.remove_all(old);
  }
  fs.fsync_dir(parent);
}

void abort_staging(FileSystem& fs, const std::string& path) noexcept {
  try {
    fs.remove_all(staging_path(path));
  } catch (...) {
    // abort runs after a failure; a second error must not hide the first.
  }
}

void read_strided_box(RandomAccessFile& file, const std::string& source, uint64_t base, uint64_t limit,
                     DType dtype, const Shape& strides, int64_t storage_offset, const Shape& box_offsets,
                     const Shape& box_lengths, const Tensor& dest) {
  const size_t nd = box_lengths.size();
  if (shape_numel(box_lengths) == 0) return;
  const uint64_t elem = dtype_size(dtype);
  // First and last element touched (strides are never negative in PyTorch).
  uint64_t first = static_cast<uint64_t>(storage_offset);
  uint64_t last = first;
  for (size_t d = 0; d < nd; ++d) {
    if (strides[d] < 0 || box_offsets[d] < 0 || box_lengths[d] < 0) {
      throw Error(ErrorCode::kCorrupt, source + ": negative stride or offset");
    }
    uint64_t a = 0, b = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(box_offsets[d]), static_cast<uint64_t>(strides[d]), &a) ||
        __builtin_add_overflow(first, a, &first) ||
        __builtin_mul_overflow(static_cast<uint64_t>(box_offsets[d] + box_lengths[d] - 1),
                               static_cast<uint64_t>(strides[d]), &b) ||
        __builtin_add_overflow(last, b, &last)) {
      throw Error(ErrorCode::kCorrupt, source + ": element offsets overflow");
    }
  }
  uint64_t end_byte = 0;
  if (__builtin_mul_overflow(last + 1, elem, &end_byte) || end_byte > limit) {
    throw Error(ErrorCode::kCorrupt, source + ": the tensor's bytes (up to byte " + std::to_string(end_byte) +
                                         " of the item) run past its stored " + std::to_string(limit) + " bytes");
  }
  const uint64_t span = (last - first + 1) * elem;
  if (span > kMaxSpanBytes && nd > 0 && box_lengths[0] > 1) {
    for (int64_t i = 0; i < box_lengths[0]; ++i) {
      Shape o = box_offsets, l = box_lengths;
      o[0] += i;
      l[0] = 1;
      read_strided_box(file, source, base, limit, dtype, strides, storage_offset, o, l, dest.narrow(0, i, 1));
    }
    return;
  }
  AlignedBuffer buffer(static_cast<size_t>(span));
  const size_t got = file.read_full(buffer.data(), static_cast<size_t>(span), base + first * elem);
  if (got != span) {
    throw Error(ErrorCode::kCorrupt, source + ": the file ends at byte offset " +
                                         std::to_string(base + first * elem + got) + ", before the tensor's bytes end");
  }
  Tensor view = Tensor::from_blob(buffer.data(), box_lengths, dtype, strides);
  Tensor(dest).copy_from(view);
}

void write_at(WritableFile& file, const void* data, size_t length, uint64_t offset) {
  if (length > 0) file.write_all(data, length, offset);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

std::string shape_json(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string to_hex(const void* data, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

bool from_hex(const std::string& hex, std::vector<std::byte>& out) {
  if (hex.size() % 2) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<std::byte>(hi * 16 + lo));
  }
  return true;
}

}  // namespace dcpp::interop
