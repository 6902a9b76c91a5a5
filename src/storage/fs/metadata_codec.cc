// Binary metadata encoding, format versions 1 and 2 (docs/format.md,
// "Metadata file"); version 2 adds each location's block layout.
//
// Why binary: at 1M chunks a DOM JSON document takes seconds and gigabytes
// (docs/design.md §3); this layout is a single forward pass of memcpy-sized reads,
// with every count checked against the bytes left before anything is
// allocated, so hostile input cannot make the decoder crash or over-allocate.
#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/fs/block_codec.h"
#include "storage/fs/fs_common.h"

namespace dcpp {
namespace {

using fs_detail::block_count;
using fs_detail::hash64;
using fs_detail::hex64;

constexpr char kMagic[8] = {'D', 'C', 'P', 'P', 'M', 'E', 'T', 'A'};
constexpr size_t kHeaderBytes = 12;   // magic + format_version
constexpr size_t kTrailerBytes = 8;   // XXH3-64 of everything before it
constexpr uint32_t kNoFile = 0xFFFFFFFFu;
constexpr uint8_t kTagKey = 0;
constexpr uint8_t kTagIndex = 1;
constexpr int kNumValueKinds = 5;
// v2 location flags.
constexpr uint8_t kFlagStoredBlocks = 1;  // a stored-block table follows (else blocks raw, back to back)
constexpr uint8_t kFlagContentHash = 2;   // the item's XXH3-128 follows

// ---------------------------------------------------------------- encoding

class Out {
 public:
  explicit Out(size_t reserve) { buf_.reserve(reserve); }
  void bytes(const void* p, size_t n) {
    size_t at = buf_.size();
    buf_.resize(at + n);
    if (n) std::memcpy(buf_.data() + at, p, n);
  }
  void u8(uint8_t v) { bytes(&v, 1); }
  void u32(uint32_t v) { bytes(&v, 4); }
  void i32(int32_t v) { bytes(&v, 4); }
  void u64(uint64_t v) { bytes(&v, 8); }
  void i64(int64_t v) { bytes(&v, 8); }
  void str(const std::string& s) {
    if (s.size() > UINT32_MAX) throw Error(ErrorCode::kInvalidArgument, "string too long to encode in metadata");
    u32(static_cast<uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void i64s(const Shape& v) { bytes(v.data(), v.size() * 8); }
  std::vector<std::byte>& buffer() { return buf_; }

 private:
  std::vector<std::byte> buf_;
};

struct FileTable {
  std::vector<std::string> names;  // sorted, unique
  std::unordered_map<std::string, uint32_t> index;
};

void collect_file(FileTable& t, const StorageLocation& loc) {
  if (!loc.file.empty()) t.index.emplace(loc.file, 0);
}

void encode_location(Out& out, const FileTable& files, const std::string& key, const StorageLocation& loc,
                     uint64_t block_size, uint32_t version) {
  uint64_t expected = block_count(loc.byte_length, block_size);
  if (loc.block_checksums.size() != expected) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot encode metadata: key '" + key + "' has " + std::to_string(loc.block_checksums.size()) +
                    " block checksums for " + std::to_string(loc.byte_length) + " bytes in blocks of " +
                    std::to_string(block_size) + " (expected " + std::to_string(expected) + ")");
  }
  if (loc.file.empty()) {
    if (loc.byte_length != 0 || loc.byte_offset != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot encode metadata: key '" + key + "' has stored bytes but no file name");
    }
    out.u32(kNoFile);
  } else {
    out.u32(files.index.at(loc.file));
  }
  out.u64(loc.byte_offset);
  out.u64(loc.byte_length);
  out.bytes(loc.block_checksums.data(), loc.block_checksums.size() * 8);
  if (version < 2) {
    if (!loc.stored_blocks.empty() || loc.content_hash) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot encode metadata: key '" + key + "' has encoded blocks or a content hash, which format "
                  "version " + std::to_string(version) + " cannot describe");
    }
    return;
  }
  out.u8(static_cast<uint8_t>((loc.stored_blocks.empty() ? 0 : kFlagStoredBlocks) |
                              (loc.content_hash ? kFlagContentHash : 0)));
  if (loc.stored_blocks.empty()) {
    if (loc.content_hash) out.bytes(loc.content_hash->data(), 16);
    return;
  }
  if (loc.stored_blocks.size() != expected) {
    throw Error(ErrorCode::kInvalidArgument, "cannot encode metadata: key '" + key + "' has " +
                                                 std::to_string(loc.stored_blocks.size()) + " stored blocks for " +
                                                 std::to_string(expected) + " checksum blocks");
  }
  for (const StoredBlock& b : loc.stored_blocks) {
    out.u8(b.encoding);
    out.u64(b.offset);
    out.u64(b.length);
  }
  if (loc.content_hash) out.bytes(loc.content_hash->data(), 16);
}

// ---------------------------------------------------------------- decoding

class In {
 public:
  In(const std::byte* base, size_t end, const std::string& source) : base_(base), end_(end), source_(source) {}

  [[noreturn]] void corrupt(size_t at, const std::string& what) const {
    throw Error(ErrorCode::kCorrupt,
                "corrupt checkpoint metadata '" + source_ + "' at byte offset " + std::to_string(at) + ": " + what);
  }
  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }
  void seek(size_t p) { pos_ = p; }
  void need(size_t n, const char* what) const {
    if (left() < n) {
      corrupt(pos_, std::string("truncated ") + what + ": needs " + std::to_string(n) + " bytes, " +
                        std::to_string(left()) + " left");
    }
  }
  void raw(void* dst, size_t n, const char* what) {
    need(n, what);
    if (n) std::memcpy(dst, base_ + pos_, n);
    pos_ += n;
  }
  uint8_t u8(const char* what) {
    uint8_t v;
    raw(&v, 1, what);
    return v;
  }
  uint32_t u32(const char* what) {
    uint32_t v;
    raw(&v, 4, what);
    return v;
  }
  int32_t i32(const char* what) {
    int32_t v;
    raw(&v, 4, what);
    return v;
  }
  uint64_t u64(const char* what) {
    uint64_t v;
    raw(&v, 8, what);
    return v;
  }
  int64_t i64(const char* what) {
    int64_t v;
    raw(&v, 8, what);
    return v;
  }
  std::string str(const char* what) {
    size_t at = pos_;
    uint32_t n = u32(what);
    if (n > left()) {
      corrupt(at, std::string(what) + " length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
                      " bytes left");
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
    pos_ += n;
    return s;
  }
  // A u64 count of entries that each take at least `min_entry` bytes: checked
  // against the bytes left before the caller reserves anything.
  uint64_t count(const char* what, uint64_t min_entry) {
    size_t at = pos_;
    uint64_t n = u64(what);
    if (min_entry > 0 && n > left() / min_entry) {
      corrupt(at, std::string(what) + " " + std::to_string(n) + " cannot fit in the " + std::to_string(left()) +
                      " bytes left");
    }
    return n;
  }
  void i64s(Shape& v, size_t n, const char* what) {
    need(n * 8, what);  // n is already bounded by the caller (ndim check)
    v.resize(n);
    raw(v.data(), n * 8, what);
  }
  const std::string& source() const { return source_; }

 private:
  const std::byte* base_;
  size_t pos_ = 0;
  size_t end_;
  const std::string& source_;
};

struct DecodeContext {
  In& in;
  std::vector<std::string> files;
  std::vector<size_t> file_offsets;  // where each table entry starts, for error messages
  std::vector<bool> validated;
  uint64_t block_size = 0;
  uint32_t version = 1;
};

// File names are validated when a key first refers to them, so the error
// names the key as well as the file.
void validate_file(DecodeContext& ctx, uint32_t index, const std::string& key) {
  if (ctx.validated[index]) return;
  try {
    if (ctx.version >= 2) {
      validate_data_file_name(key, ctx.files[index]);
    } else {
      validate_relative_file_name(key, ctx.files[index]);
    }
  } catch (const Error& e) {
    ctx.in.corrupt(ctx.file_offsets[index], e.message());
  }
  ctx.validated[index] = true;
}

void decode_stored_blocks(DecodeContext& ctx, const std::string& key, StorageLocation& loc, uint64_t blocks);

void decode_location(DecodeContext& ctx, const std::string& key, StorageLocation& loc) {
  In& in = ctx.in;
  size_t at = in.pos();
  uint32_t index = in.u32("file index");
  loc.byte_offset = in.u64("byte offset");
  loc.byte_length = in.u64("byte length");
  if (index == kNoFile) {
    if (loc.byte_offset != 0 || loc.byte_length != 0) {
      in.corrupt(at, "key '" + key + "' stores " + std::to_string(loc.byte_length) + " bytes but names no file");
    }
  } else {
    if (index >= ctx.files.size()) {
      in.corrupt(at, "key '" + key + "' names file index " + std::to_string(index) + " of a table of " +
                         std::to_string(ctx.files.size()));
    }
    validate_file(ctx, index, key);
    loc.file = ctx.files[index];
  }
  if (loc.byte_offset > UINT64_MAX - loc.byte_length) {
    in.corrupt(at, "key '" + key + "' byte range overflows (offset " + std::to_string(loc.byte_offset) +
                       ", length " + std::to_string(loc.byte_length) + ")");
  }
  uint64_t blocks = block_count(loc.byte_length, ctx.block_size);
  if (blocks > in.left() / 8) {
    in.corrupt(in.pos(), "key '" + key + "' needs " + std::to_string(blocks) + " block checksums, more than the " +
                             std::to_string(in.left()) + " bytes left hold");
  }
  loc.block_checksums.resize(blocks);
  in.raw(loc.block_checksums.data(), blocks * 8, "block checksums");
  if (ctx.version < 2) return;
  at = in.pos();
  const uint8_t flags = in.u8("location flags");
  if (flags & ~(kFlagStoredBlocks | kFlagContentHash)) {
    in.corrupt(at, "key '" + key + "' has unknown location flags " + std::to_string(flags));
  }
  if (flags & kFlagStoredBlocks) decode_stored_blocks(ctx, key, loc, blocks);
  if (flags & kFlagContentHash) {
    std::array<uint64_t, 2> h;
    in.raw(h.data(), 16, "content hash");
    loc.content_hash = h;
  }
}

void decode_stored_blocks(DecodeContext& ctx, const std::string& key, StorageLocation& loc, uint64_t blocks) {
  In& in = ctx.in;
  size_t at = in.pos();
  if (blocks > in.left() / 17) {
    in.corrupt(in.pos(), "key '" + key + "' needs " + std::to_string(blocks) + " stored-block entries, more than the " +
                             std::to_string(in.left()) + " bytes left hold");
  }
  loc.stored_blocks.resize(blocks);
  uint64_t end = 0;  // where the previous block ends, relative to byte_offset
  for (uint64_t b = 0; b < blocks; ++b) {
    at = in.pos();
    StoredBlock& sb = loc.stored_blocks[b];
    sb.encoding = in.u8("block encoding");
    sb.offset = in.u64("block offset");
    sb.length = in.u64("block stored length");
    const std::string which = "key '" + key + "' block " + std::to_string(b);
    if (sb.encoding > fs_detail::kMaxBlockEncoding) {
      in.corrupt(at, which + " has unknown encoding " + std::to_string(sb.encoding));
    }
    const uint64_t decoded = std::min(ctx.block_size, loc.byte_length - b * ctx.block_size);
    if (sb.encoding == 0 ? sb.length != decoded : sb.length == 0) {
      in.corrupt(at, which + " stores " + std::to_string(sb.length) + " bytes for " + std::to_string(decoded) +
                         " decoded bytes");
    }
    if (sb.offset < end || (b == 0 && sb.offset != 0)) {
      in.corrupt(at, which + " starts at item offset " + std::to_string(sb.offset) +
                         (b == 0 ? ", not 0" : ", inside the previous block"));
    }
    if (sb.length > UINT64_MAX - sb.offset || sb.offset + sb.length > UINT64_MAX - loc.byte_offset) {
      in.corrupt(at, which + " byte range overflows");
    }
    end = sb.offset + sb.length;
  }
}

int64_t checked_numel(In& in, size_t at, const std::string& key, const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) {
    if (__builtin_mul_overflow(n, s, &n)) in.corrupt(at, "key '" + key + "' has a chunk whose element count overflows");
  }
  return n;
}

void decode_tensor(DecodeContext& ctx, const std::string& key, TensorMeta& t) {
  In& in = ctx.in;
  size_t at = in.pos();
  uint8_t dtype = in.u8("dtype");
  if (dtype >= kNumDTypes) in.corrupt(at, "key '" + key + "' has unknown dtype code " + std::to_string(dtype));
  t.dtype = static_cast<DType>(dtype);
  const uint64_t elem = dtype_size(t.dtype);
  at = in.pos();
  uint32_t ndim = in.u32("ndim");
  if (ndim > in.left() / 8) in.corrupt(at, "key '" + key + "' claims " + std::to_string(ndim) + " dimensions");
  in.i64s(t.global_shape, ndim, "global shape");
  for (int64_t d : t.global_shape) {
    if (d < 0) in.corrupt(at, "key '" + key + "' has a negative dimension in its global shape");
  }
  // Each chunk holds offsets, sizes and a location (file index, offset, length).
  const uint64_t min_chunk = uint64_t{ndim} * 16 + 20;
  uint64_t nchunks = in.count("chunk count", min_chunk);
  t.chunks.resize(nchunks);
  for (auto& c : t.chunks) {
    size_t chunk_at = in.pos();
    in.i64s(c.offsets, ndim, "chunk offsets");
    in.i64s(c.sizes, ndim, "chunk sizes");
    for (uint32_t d = 0; d < ndim; ++d) {
      int64_t o = c.offsets[d], s = c.sizes[d], g = t.global_shape[d];
      if (o < 0 || s < 0 || o > g || s > g - o) {
        in.corrupt(chunk_at, "key '" + key + "' has a chunk at " + shape_to_string(c.offsets) + " of size " +
                                 shape_to_string(c.sizes) + " outside its global shape " +
                                 shape_to_string(t.global_shape));
      }
    }
    int64_t numel = checked_numel(in, chunk_at, key, c.sizes);
    uint64_t expected;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), elem, &expected)) {
      in.corrupt(chunk_at, "key '" + key + "' has a chunk whose byte length overflows");
    }
    size_t loc_at = in.pos();
    decode_location(ctx, key, c.location);
    if (c.location.byte_length != expected) {
      in.corrupt(loc_at, "key '" + key + "' chunk at " + shape_to_string(c.offsets) + " stores " +
                             std::to_string(c.location.byte_length) + " bytes, its " + std::to_string(numel) + " " +
                             std::string(dtype_name(t.dtype)) + " elements need " + std::to_string(expected));
    }
  }
}

void decode_path(In& in, const std::string& key, std::vector<PathElement>& path) {
  size_t at = in.pos();
  uint32_t n = in.u32("path length");
  if (n > in.left() / 5) in.corrupt(at, "path of key '" + key + "' claims " + std::to_string(n) + " elements");
  path.resize(n);
  for (auto& e : path) {
    size_t eat = in.pos();
    uint8_t tag = in.u8("path element tag");
    if (tag == kTagKey) {
      e.is_index = false;
      e.key = in.str("path element key");
    } else if (tag == kTagIndex) {
      e.is_index = true;
      e.index = in.i64("path element index");
    } else {
      in.corrupt(eat, "path of key '" + key + "' has an element with unknown tag " + std::to_string(tag));
    }
  }
}

// Keys are written in strictly increasing byte order: a decoder can append
// to its maps in O(1) and a duplicate is a structural error.
void check_key_order(In& in, size_t at, const std::string* prev, const std::string& key, const char* section) {
  if (prev != nullptr && !(*prev < key)) {
    in.corrupt(at, std::string(section) + " key '" + key + "' is out of order or duplicated (after '" + *prev + "')");
  }
}

}  // namespace

void validate_relative_file_name(const std::string& key, const std::string& file) {
  auto bad = [&](const std::string& why) {
    throw Error(ErrorCode::kCorrupt, "key '" + key + "' names data file '" + file + "', which " + why +
                                         "; refusing to read outside the checkpoint directory");
  };
  if (file.empty()) bad("is empty");
  if (file.find('\0') != std::string::npos) bad("contains a NUL byte");
  if (file.front() == '/') bad("is an absolute path");
  size_t start = 0;
  while (start <= file.size()) {
    size_t slash = file.find('/', start);
    if (slash == std::string::npos) slash = file.size();
    std::string_view part(file.data() + start, slash - start);
    if (part.empty()) bad("has an empty path component");
    if (part == "..") bad("climbs out with '..'");
    if (part == ".") bad("has a '.' component");
    start = slash + 1;
  }
}

std::optional<std::string> referenced_checkpoint(const std::string& file) {
  if (file.rfind("../", 0) != 0) return std::nullopt;
  const size_t slash = file.find('/', 3);
  if (slash == std::string::npos) return std::nullopt;
  return file.substr(3, slash - 3);
}

void validate_data_file_name(const std::string& key, const std::string& file) {
  const std::optional<std::string> sibling = referenced_checkpoint(file);
  if (!sibling) {
    validate_relative_file_name(key, file);
    return;
  }
  // "../<checkpoint>/<file>": one step up to a sibling checkpoint, never a
  // hidden (staging or set-aside) directory, then a plain relative name.
  if (sibling->empty() || sibling->front() == '.' || sibling->find('\0') != std::string::npos) {
    throw Error(ErrorCode::kCorrupt, "key '" + key + "' names data file '" + file +
                                         "', which does not reference a sibling checkpoint directory");
  }
  validate_relative_file_name(key, file.substr(4 + sibling->size()));
}

std::vector<std::byte> encode_metadata(const Metadata& md) {
  if (md.block_size == 0) throw Error(ErrorCode::kInvalidArgument, "cannot encode metadata with block size 0");
  // Versions past kFsFormatVersion are encoded in the newest layout (tests
  // make such files to check that readers refuse them).
  if (md.format_version < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot encode metadata in format version " + std::to_string(md.format_version));
  }
  FileTable files;
  size_t estimate = 64 + md.format.size() + md.dcpp_version.size();
  for (const auto& [key, t] : md.tensors) {
    estimate += key.size() + 32 + t.global_shape.size() * 8;
    for (const auto& c : t.chunks) {
      collect_file(files, c.location);
      estimate += c.offsets.size() * 16 + 21 + c.location.block_checksums.size() * 25;
    }
  }
  for (const auto& [key, v] : md.values) {
    collect_file(files, v.location);
    estimate += key.size() + 33 + v.location.block_checksums.size() * 25;
  }
  for (const auto& [key, p] : md.paths) estimate += key.size() + 8 + p.size() * 16;
  files.names.reserve(files.index.size());
  for (const auto& [name, _] : files.index) files.names.push_back(name);
  std::sort(files.names.begin(), files.names.end());
  if (files.names.size() >= kNoFile) throw Error(ErrorCode::kInvalidArgument, "too many data files to encode");
  for (uint32_t i = 0; i < files.names.size(); ++i) {
    files.index[files.names[i]] = i;
    estimate += files.names[i].size() + 4;
  }

  Out out(estimate);
  out.bytes(kMagic, sizeof kMagic);
  out.u32(md.format_version);
  out.str(md.format);
  out.str(md.dcpp_version);
  out.i32(md.world_size);
  out.u64(md.block_size);
  out.u32(static_cast<uint32_t>(files.names.size()));
  for (const auto& name : files.names) {
    try {
      if (md.format_version >= 2) {
        validate_data_file_name("(file table)", name);
      } else {
        validate_relative_file_name("(file table)", name);
      }
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument, "cannot encode metadata: " + e.message());
    }
    out.str(name);
  }

  out.u64(md.tensors.size());
  for (const auto& [key, t] : md.tensors) {
    out.str(key);
    out.u8(static_cast<uint8_t>(t.dtype));
    out.u32(static_cast<uint32_t>(t.global_shape.size()));
    out.i64s(t.global_shape);
    out.u64(t.chunks.size());
    for (const auto& c : t.chunks) {
      if (c.offsets.size() != t.global_shape.size() || c.sizes.size() != t.global_shape.size()) {
        throw Error(ErrorCode::kInvalidArgument, "cannot encode metadata: a chunk of '" + key +
                                                     "' has a different rank than its global shape " +
                                                     shape_to_string(t.global_shape));
      }
      out.i64s(c.offsets);
      out.i64s(c.sizes);
      encode_location(out, files, key, c.location, md.block_size, md.format_version);
    }
  }

  out.u64(md.values.size());
  for (const auto& [key, v] : md.values) {
    out.str(key);
    out.u8(static_cast<uint8_t>(v.kind));
    encode_location(out, files, key, v.location, md.block_size, md.format_version);
  }

  out.u64(md.paths.size());
  for (const auto& [key, path] : md.paths) {
    out.str(key);
    out.u32(static_cast<uint32_t>(path.size()));
    for (const auto& e : path) {
      if (e.is_index) {
        out.u8(kTagIndex);
        out.i64(e.index);
      } else {
        out.u8(kTagKey);
        out.str(e.key);
      }
    }
  }

  auto& buf = out.buffer();
  uint64_t sum = hash64(buf.data(), buf.size());
  out.u64(sum);
  return std::move(out.buffer());
}

Metadata decode_metadata(const void* data, size_t size, const std::string& source) {
  const auto* base = static_cast<const std::byte*>(data);
  In header(base, size, source);
  if (size < kHeaderBytes + kTrailerBytes) {
    header.corrupt(0, "the file is " + std::to_string(size) + " bytes, too short to be dcpp metadata (at least " +
                          std::to_string(kHeaderBytes + kTrailerBytes) + ")");
  }
  if (std::memcmp(base, kMagic, sizeof kMagic) != 0) {
    header.corrupt(0, "bad magic: not a dcpp metadata file");
  }
  // The magic, the version field and the trailing checksum keep their place
  // in every format version, so these checks come before anything else.
  const size_t body_end = size - kTrailerBytes;
  uint64_t stored;
  std::memcpy(&stored, base + body_end, 8);
  uint64_t computed = hash64(base, body_end);
  if (stored != computed) {
    header.corrupt(body_end, "metadata checksum mismatch (stored " + hex64(stored) + ", computed " +
                                 hex64(computed) + "): the file is damaged or truncated");
  }
  uint32_t version;
  std::memcpy(&version, base + 8, 4);
  if (version > kFsFormatVersion) {
    throw Error(ErrorCode::kUnsupported, "checkpoint format version " + std::to_string(version) +
                                             " is newer than this dcpp supports (max " +
                                             std::to_string(kFsFormatVersion) + "); upgrade dcpp (reading '" +
                                             source + "')");
  }
  if (version == 0) header.corrupt(8, "format version 0 does not exist");

  In in(base, body_end, source);
  in.seek(kHeaderBytes);
  Metadata md;
  md.format_version = version;
  md.format = in.str("format name");
  if (md.format != kFsFormatName) {
    in.corrupt(kHeaderBytes, "format name is '" + md.format + "', expected '" + std::string(kFsFormatName) + "'");
  }
  md.dcpp_version = in.str("dcpp version");
  size_t at = in.pos();
  md.world_size = in.i32("world size");
  if (md.world_size < 1) in.corrupt(at, "world size " + std::to_string(md.world_size) + " is not positive");
  at = in.pos();
  md.block_size = in.u64("block size");
  if (md.block_size == 0) in.corrupt(at, "block size is 0");

  DecodeContext ctx{in, {}, {}, {}, md.block_size, version};
  at = in.pos();
  uint32_t nfiles = in.u32("file count");
  if (nfiles > in.left() / 4) in.corrupt(at, "file count " + std::to_string(nfiles) + " cannot fit");
  ctx.files.reserve(nfiles);
  ctx.file_offsets.reserve(nfiles);
  for (uint32_t i = 0; i < nfiles; ++i) {
    ctx.file_offsets.push_back(in.pos());
    ctx.files.push_back(in.str("file name"));
  }
  ctx.validated.assign(nfiles, false);

  uint64_t ntensors = in.count("tensor count", 4 + 1 + 4 + 8);
  const std::string* prev = nullptr;
  for (uint64_t i = 0; i < ntensors; ++i) {
    at = in.pos();
    std::string key = in.str("tensor key");
    check_key_order(in, at, prev, key, "tensor");
    auto it = md.tensors.emplace_hint(md.tensors.end(), std::move(key), TensorMeta{});
    decode_tensor(ctx, it->first, it->second);
    prev = &it->first;
  }

  uint64_t nvalues = in.count("value count", 4 + 1 + 20);
  prev = nullptr;
  for (uint64_t i = 0; i < nvalues; ++i) {
    at = in.pos();
    std::string key = in.str("value key");
    check_key_order(in, at, prev, key, "value");
    if (md.tensors.count(key)) in.corrupt(at, "key '" + key + "' is both a tensor and a value");
    size_t kat = in.pos();
    uint8_t kind = in.u8("value kind");
    if (kind >= kNumValueKinds) in.corrupt(kat, "value '" + key + "' has unknown kind " + std::to_string(kind));
    auto it = md.values.emplace_hint(md.values.end(), std::move(key), ValueMeta{});
    it->second.kind = static_cast<ValueKind>(kind);
    decode_location(ctx, it->first, it->second.location);
    prev = &it->first;
  }

  uint64_t npaths = in.count("path count", 4 + 4);
  prev = nullptr;
  for (uint64_t i = 0; i < npaths; ++i) {
    at = in.pos();
    std::string key = in.str("path key");
    check_key_order(in, at, prev, key, "path");
    auto it = md.paths.emplace_hint(md.paths.end(), std::move(key), std::vector<PathElement>{});
    decode_path(in, it->first, it->second);
    prev = &it->first;
  }

  for (uint32_t i = 0; i < nfiles; ++i) validate_file(ctx, i, "(no key: unreferenced file table entry)");
  if (in.left() != 0) {
    in.corrupt(in.pos(), std::to_string(in.left()) + " unexpected bytes before the trailing checksum");
  }
  return md;
}

}  // namespace dcpp
