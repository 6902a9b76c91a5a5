// metadata_to_json: a streaming rendering of Metadata for people and tools
// (`dcpp inspect --json`). Written by hand rather than through a DOM so a
// 1M-chunk checkpoint renders in one pass without a second copy in memory.
#include <charconv>
#include <cstdio>

#include "dcpp/fs_storage.h"
#include "storage/fs/fs_common.h"

namespace dcpp {
namespace {

std::string_view kind_name(ValueKind kind) {
  // Local table: the storage layer does not need the checkpoint layer's
  // value_kind_name just to print five words.
  switch (kind) {
    case ValueKind::kInt64: return "int64";
    case ValueKind::kDouble: return "double";
    case ValueKind::kBool: return "bool";
    case ValueKind::kString: return "string";
    case ValueKind::kBytes: return "bytes";
  }
  return "unknown";
}

class JsonOut {
 public:
  explicit JsonOut(bool pretty) : pretty_(pretty) {}

  void raw(std::string_view s) { s_.append(s); }
  void string(std::string_view v) {
    s_.push_back('"');
    for (char ch : v) {
      auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"': s_.append("\\\""); break;
        case '\\': s_.append("\\\\"); break;
        case '\n': s_.append("\\n"); break;
        case '\r': s_.append("\\r"); break;
        case '\t': s_.append("\\t"); break;
        case '\b': s_.append("\\b"); break;
        case '\f': s_.append("\\f"); break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            s_.append(buf);
          } else {
            s_.push_back(ch);  // UTF-8 passes through
          }
      }
    }
    s_.push_back('"');
  }
  template <typename T>
  void number(T v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    s_.append(buf, r.ptr);
  }
  void ints(const Shape& v) {
    s_.push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s_.append(", ");
      number(v[i]);
    }
    s_.push_back(']');
  }
  // Structure: open/close with indentation and commas handled here.
  void open(char c) {
    s_.push_back(c);
    ++depth_;
    first_ = true;
  }
  void close(char c) {
    --depth_;
    if (!first_) newline();
    s_.push_back(c);
    first_ = false;
  }
  void key(std::string_view k) {
    item();
    string(k);
    s_.append(pretty_ ? ": " : ":");
  }
  void item() {
    if (!first_) s_.push_back(',');
    newline();
    first_ = false;
  }
  std::string take() { return std::move(s_); }

 private:
  void newline() {
    if (!pretty_) return;
    s_.push_back('\n');
    s_.append(static_cast<size_t>(depth_) * 2, ' ');
  }
  std::string s_;
  bool pretty_;
  int depth_ = 0;
  bool first_ = true;
};

void location(JsonOut& j, const StorageLocation& loc) {
  j.key("file");
  j.string(loc.file);
  j.key("byte_offset");
  j.number(loc.byte_offset);
  j.key("byte_length");
  j.number(loc.byte_length);
  j.key("block_checksums");
  j.raw("[");
  for (size_t i = 0; i < loc.block_checksums.size(); ++i) {
    if (i) j.raw(", ");
    j.string(fs_detail::hex64(loc.block_checksums[i]));
  }
  j.raw("]");
  if (loc.stored_blocks.empty()) return;
  // Version 2 encoded items: [encoding, offset, stored length] per block.
  j.key("stored_blocks");
  j.raw("[");
  for (size_t i = 0; i < loc.stored_blocks.size(); ++i) {
    const StoredBlock& b = loc.stored_blocks[i];
    j.raw(std::string(i ? ", " : "") + "[" + std::to_string(b.encoding) + ", " + std::to_string(b.offset) + ", " +
          std::to_string(b.length) + "]");
  }
  j.raw("]");
}

}  // namespace

std::string metadata_to_json(const Metadata& md, bool pretty) {
  JsonOut j(pretty);
  j.open('{');
  j.key("format");
  j.string(md.format);
  j.key("format_version");
  j.number(md.format_version);
  j.key("dcpp_version");
  j.string(md.dcpp_version);
  j.key("world_size");
  j.number(md.world_size);
  j.key("block_size");
  j.number(md.block_size);
  j.key("checksum");
  j.string("xxh3-64");
  j.key("tensors");
  j.open('{');
  for (const auto& [key, t] : md.tensors) {
    j.key(key);
    j.open('{');
    j.key("dtype");
    j.string(dtype_name(t.dtype));
    j.key("global_shape");
    j.ints(t.global_shape);
    j.key("chunks");
    j.open('[');
    for (const auto& c : t.chunks) {
      j.item();
      j.open('{');
      j.key("offsets");
      j.ints(c.offsets);
      j.key("sizes");
      j.ints(c.sizes);
      location(j, c.location);
      j.close('}');
    }
    j.close(']');
    j.close('}');
  }
  j.close('}');
  j.key("values");
  j.open('{');
  for (const auto& [key, v] : md.values) {
    j.key(key);
    j.open('{');
    j.key("kind");
    j.string(kind_name(v.kind));
    location(j, v.location);
    j.close('}');
  }
  j.close('}');
  j.key("paths");
  j.open('{');
  for (const auto& [key, path] : md.paths) {
    j.key(key);
    j.raw("[");
    for (size_t i = 0; i < path.size(); ++i) {
      if (i) j.raw(", ");
      if (path[i].is_index) {
        j.number(path[i].index);
      } else {
        j.string(path[i].key);
      }
    }
    j.raw("]");
  }
  j.close('}');
  j.close('}');
  std::string s = j.take();
  if (pretty) s.push_back('\n');
  return s;
}

}  // namespace dcpp
