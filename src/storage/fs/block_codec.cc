#include "storage/fs/block_codec.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_literalCompressionMode (experimental, stable in 1.5)
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "dcpp/error.h"

namespace dcpp::fs_detail {
namespace {

constexpr unsigned kMaxWidth = 8;
constexpr size_t kEntropySample = 64 << 10;

size_t group_size(size_t n, unsigned width, unsigned g) { return n > g ? (n - g + width - 1) / width : 0; }
size_t header_size(unsigned width) { return 1 + 5 * static_cast<size_t>(width); }

void put_u32(std::byte* p, uint32_t v) { std::memcpy(p, &v, 4); }
uint32_t get_u32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Byte i of the block → byte i / width of group i % width; groups laid out
// one after another in `out`.
void split(const std::byte* src, size_t n, unsigned width, std::byte* out) {
  const auto* s = reinterpret_cast<const uint8_t*>(src);
  auto* o = reinterpret_cast<uint8_t*>(out);
  if (width == 2) {
    const size_t m = n / 2, g1 = group_size(n, 2, 0);
    for (size_t i = 0; i < m; ++i) {
      o[i] = s[2 * i];
      o[g1 + i] = s[2 * i + 1];
    }
    if (n % 2) o[m] = s[n - 1];
    return;
  }
  if (width == 4 && n % 4 == 0) {
    const size_t m = n / 4;
    for (size_t i = 0; i < m; ++i) {
      o[i] = s[4 * i];
      o[m + i] = s[4 * i + 1];
      o[2 * m + i] = s[4 * i + 2];
      o[3 * m + i] = s[4 * i + 3];
    }
    return;
  }
  size_t at = 0;
  for (unsigned g = 0; g < width; ++g) {
    for (size_t i = g; i < n; i += width) o[at++] = s[i];
  }
}

void join(const std::byte* groups, size_t n, unsigned width, std::byte* dst) {
  const auto* s = reinterpret_cast<const uint8_t*>(groups);
  auto* d = reinterpret_cast<uint8_t*>(dst);
  if (width == 2) {
    const size_t m = n / 2, g1 = group_size(n, 2, 0);
    for (size_t i = 0; i < m; ++i) {
      d[2 * i] = s[i];
      d[2 * i + 1] = s[g1 + i];
    }
    if (n % 2) d[n - 1] = s[m];
    return;
  }
  if (width == 4 && n % 4 == 0) {
    const size_t m = n / 4;
    for (size_t i = 0; i < m; ++i) {
      d[4 * i] = s[i];
      d[4 * i + 1] = s[m + i];
      d[4 * i + 2] = s[2 * m + i];
      d[4 * i + 3] = s[3 * m + i];
    }
    return;
  }
  size_t at = 0;
  for (unsigned g = 0; g < width; ++g) {
    for (size_t i = g; i < n; i += width) d[i] = s[at++];
  }
}

// Bytes an order-0 entropy coder would need for `n` bytes at `p` (a lower
// bound Huffman gets close to on 128 KiB blocks).
double entropy_bytes(const uint8_t* p, size_t n) {
  std::array<uint32_t, 256> h0{}, h1{}, h2{}, h3{};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h0[p[i]];
    ++h1[p[i + 1]];
    ++h2[p[i + 2]];
    ++h3[p[i + 3]];
  }
  for (; i < n; ++i) ++h0[p[i]];
  double bits = 0;
  const double total = static_cast<double>(n);
  for (int s = 0; s < 256; ++s) {
    const uint32_t c = h0[s] + h1[s] + h2[s] + h3[s];
    if (c) bits += c * std::log2(total / c);
  }
  return bits / 8;
}

}  // namespace

std::pair<uint64_t, uint64_t> stored_span(const StorageLocation& loc, uint64_t first, uint64_t last,
                                          uint64_t block_size) {
  if (loc.stored_blocks.empty()) {
    return {loc.byte_offset + first * block_size, loc.byte_offset + std::min((last + 1) * block_size, loc.byte_length)};
  }
  const StoredBlock& a = loc.stored_blocks[first];
  const StoredBlock& b = loc.stored_blocks[last];
  return {loc.byte_offset + a.offset, loc.byte_offset + b.offset + b.length};
}

unsigned group_width(DType dtype) { return static_cast<unsigned>(dtype_size(dtype)); }

size_t max_encoded_size(size_t n, unsigned width) {
  size_t bound = header_size(width);
  for (unsigned g = 0; g < width; ++g) bound += ZSTD_compressBound(group_size(n, width, g));
  return bound;
}

struct BlockEncoder::State {
  ZSTD_CCtx* cctx = nullptr;
  std::vector<std::byte> groups;
  CodecOptions options;
  ~State() { ZSTD_freeCCtx(cctx); }
};

BlockEncoder::BlockEncoder(CodecOptions options) : state_(std::make_unique<State>()) {
  state_->options = options;
  state_->cctx = ZSTD_createCCtx();
  if (!state_->cctx) throw Error(ErrorCode::kInternal, "cannot allocate a zstd compression context");
  auto set = [&](ZSTD_cParameter p, int v) {
    const size_t rc = ZSTD_CCtx_setParameter(state_->cctx, p, v);
    if (ZSTD_isError(rc)) {
      throw Error(ErrorCode::kInternal, std::string("zstd parameter: ") + ZSTD_getErrorName(rc));
    }
  };
  set(ZSTD_c_compressionLevel, options.zstd_level);
  // Fast levels normally store literals raw; the point here is to entropy-code them.
  set(ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
  set(ZSTD_c_checksumFlag, 0);
  set(ZSTD_c_contentSizeFlag, 1);
}

BlockEncoder::~BlockEncoder() = default;

size_t BlockEncoder::encode(const std::byte* src, size_t n, unsigned width, std::byte* dst) {
  if (width < 1 || width > kMaxWidth) throw Error(ErrorCode::kInternal, "block codec: bad group width");
  if (n == 0) return 0;
  State& s = *state_;
  const std::byte* groups = src;
  if (width > 1) {
    if (s.groups.size() < n) s.groups.resize(n);
    split(src, n, width, s.groups.data());
    groups = s.groups.data();
  }
  std::byte* header = dst;
  header[0] = static_cast<std::byte>(width);
  size_t out = header_size(width);
  size_t at = 0;
  for (unsigned g = 0; g < width; ++g) {
    const size_t gn = group_size(n, width, g);
    const std::byte* gp = groups + at;
    at += gn;
    GroupMode mode = GroupMode::kRaw;
    size_t stored = gn;
    // The estimate looks at a sample (the group's start): groups of one
    // block are alike throughout, and zstd's own result decides in the end.
    const size_t sample = std::min<size_t>(gn, kEntropySample);
    if (gn > 0 &&
        entropy_bytes(reinterpret_cast<const uint8_t*>(gp), sample) < (1.0 - s.options.min_saving) * sample) {
      const size_t rc = ZSTD_compress2(s.cctx, dst + out, ZSTD_compressBound(gn), gp, gn);
      if (ZSTD_isError(rc)) throw Error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(rc));
      if (rc < gn) {
        mode = GroupMode::kZstd;
        stored = rc;
      }
    }
    if (mode == GroupMode::kRaw && gn > 0) std::memcpy(dst + out, gp, gn);
    header[1 + 5 * g] = static_cast<std::byte>(mode);
    put_u32(header + 2 + 5 * g, static_cast<uint32_t>(stored));
    out += stored;
    if (out >= n) return 0;  // not smaller: the block is stored raw
  }
  return out;
}

struct BlockDecoder::State {
  ZSTD_DCtx* dctx = nullptr;
  std::vector<std::byte> groups;
  ~State() { ZSTD_freeDCtx(dctx); }
};

BlockDecoder::BlockDecoder() : state_(std::make_unique<State>()) {
  state_->dctx = ZSTD_createDCtx();
  if (!state_->dctx) throw Error(ErrorCode::kInternal, "cannot allocate a zstd decompression context");
}

BlockDecoder::~BlockDecoder() = default;

std::string BlockDecoder::decode(const std::byte* stored, size_t stored_length, std::byte* dst, size_t n) {
  if (stored_length < 1) return "empty encoded block";
  const unsigned width = static_cast<unsigned>(stored[0]);
  if (width < 1 || width > kMaxWidth) return "group count " + std::to_string(width) + " is not in 1..8";
  const size_t head = header_size(width);
  if (stored_length < head) return "encoded block shorter than its group table";
  State& s = *state_;
  std::byte* groups = dst;
  if (width > 1) {
    if (s.groups.size() < n) s.groups.resize(n);
    groups = s.groups.data();
  }
  size_t in = head, at = 0;
  for (unsigned g = 0; g < width; ++g) {
    const auto mode = static_cast<uint8_t>(stored[1 + 5 * g]);
    const size_t len = get_u32(stored + 2 + 5 * g);
    const size_t gn = group_size(n, width, g);
    if (len > stored_length - in) return "group " + std::to_string(g) + " runs past the end of the encoded block";
    if (mode == static_cast<uint8_t>(GroupMode::kRaw)) {
      if (len != gn) {
        return "raw group " + std::to_string(g) + " holds " + std::to_string(len) + " bytes, expected " +
               std::to_string(gn);
      }
      if (gn) std::memcpy(groups + at, stored + in, gn);
    } else if (mode == static_cast<uint8_t>(GroupMode::kZstd)) {
      const size_t rc = ZSTD_decompressDCtx(s.dctx, groups + at, gn, stored + in, len);
      if (ZSTD_isError(rc)) return "group " + std::to_string(g) + ": zstd: " + ZSTD_getErrorName(rc);
      if (rc != gn) {
        return "group " + std::to_string(g) + " decodes to " + std::to_string(rc) + " bytes, expected " +
               std::to_string(gn);
      }
    } else {
      return "group " + std::to_string(g) + " has unknown mode " + std::to_string(mode);
    }
    in += len;
    at += gn;
  }
  if (in != stored_length) return std::to_string(stored_length - in) + " bytes follow the last group";
  if (width > 1) join(groups, n, width, dst);
  return {};
}

}  // namespace dcpp::fs_detail
