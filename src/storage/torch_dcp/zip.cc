// ZIP reading and writing for torch.save archives (see zip.h). Field
// layouts follow PKWARE's APPNOTE 6.3 (local header, central directory,
// end of central directory, ZIP64 end record and locator, ZIP64 extra field).
#include "storage/torch_dcp/zip.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "dcpp/error.h"

namespace dcpp::torch_dcp {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kMaxComment = 0xffff;
constexpr uint64_t kMaxEntries = 1 << 20;
constexpr uint64_t kMaxCentralDirectory = 256ull << 20;
constexpr uint64_t kAlignment = 64;  // PyTorch's kFieldAlignment

std::array<std::array<uint32_t, 256>, 8> make_crc_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

const std::array<std::array<uint32_t, 256>, 8>& crc_tables() {
  static const auto tables = make_crc_tables();
  return tables;
}

uint16_t get16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t get32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t get64(const unsigned char* p) { return get32(p) | (static_cast<uint64_t>(get32(p + 4)) << 32); }

void put16(std::vector<unsigned char>& b, uint16_t v) {
  b.push_back(v & 0xff);
  b.push_back(v >> 8);
}
void put32(std::vector<unsigned char>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back((v >> (8 * i)) & 0xff);
}
void put64(std::vector<unsigned char>& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back((v >> (8 * i)) & 0xff);
}

}  // namespace

uint32_t crc32(const void* data, size_t length, uint32_t crc) {
  const auto& t = crc_tables();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  while (length >= 8) {
    uint32_t lo = c ^ get32(p);
    uint32_t hi = get32(p + 4);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
        t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    length -= 8;
  }
  while (length--) c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

// ---- reader ----

ZipReader::ZipReader(RandomAccessFile& file, uint64_t base, uint64_t length, std::string source)
    : file_(file), base_(base), length_(length), source_(std::move(source)) {
  parse();
}

void ZipReader::read_raw(uint64_t offset, void* out, uint64_t length, const char* what) const {
  if (offset > length_ || length > length_ - offset) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": " + what + " at archive offset " +
                                         std::to_string(offset) + " (+" + std::to_string(length) +
                                         " bytes) lies past the archive's end at " + std::to_string(length_));
  }
  size_t got = file_.read_full(out, static_cast<size_t>(length), base_ + offset);
  if (got != length) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": the file ends at byte offset " +
                                         std::to_string(base_ + offset + got) + " while reading the " + what +
                                         " (the item claims " + std::to_string(length_) + " bytes)");
  }
}

void ZipReader::parse() {
  if (length_ < kEndSize) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": " + std::to_string(length_) +
                                         " bytes is too short for a zip archive (bad magic)");
  }
  const uint64_t tail_len = std::min(length_, kEndSize + kMaxComment);
  std::vector<unsigned char> tail(tail_len);
  read_raw(length_ - tail_len, tail.data(), tail_len, "end of central directory");
  int64_t end_at = -1;
  for (int64_t i = static_cast<int64_t>(tail_len - kEndSize); i >= 0; --i) {
    if (get32(&tail[i]) == kEndSig && i + kEndSize + get16(&tail[i + 20]) == tail_len) {
      end_at = i;
      break;
    }
  }
  if (end_at < 0) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ +
                                         ": no end-of-central-directory record (bad magic: not a torch.save archive)");
  }
  const unsigned char* e = &tail[end_at];
  const uint64_t end_offset = length_ - tail_len + static_cast<uint64_t>(end_at);
  uint64_t count = get16(e + 10);
  uint64_t cd_size = get32(e + 12);
  uint64_t cd_offset = get32(e + 16);
  if (get16(e + 4) != 0 || get16(e + 6) != 0) {
    throw Error(ErrorCode::kUnsupported, "zip archive " + source_ + ": multi-disk archives are not supported");
  }
  if (count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    if (end_offset < 20) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": ZIP64 fields but no ZIP64 locator");
    }
    unsigned char loc[20];
    read_raw(end_offset - 20, loc, 20, "ZIP64 end locator");
    if (get32(loc) != kEnd64LocatorSig) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": ZIP64 locator missing at archive offset " +
                                           std::to_string(end_offset - 20));
    }
    const uint64_t end64 = get64(loc + 8);
    unsigned char rec[56];
    read_raw(end64, rec, 56, "ZIP64 end of central directory");
    if (get32(rec) != kEnd64Sig) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": bad ZIP64 end record magic at archive offset " +
                                           std::to_string(end64));
    }
    count = get64(rec + 32);
    cd_size = get64(rec + 40);
    cd_offset = get64(rec + 48);
  }
  if (count > kMaxEntries) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": " + std::to_string(count) + " entries (limit " +
                                         std::to_string(kMaxEntries) + ")");
  }
  if (cd_size > kMaxCentralDirectory || cd_offset > length_ || cd_size > length_ - cd_offset ||
      cd_size < count * 46) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": central directory at archive offset " +
                                         std::to_string(cd_offset) + " of " + std::to_string(cd_size) +
                                         " bytes for " + std::to_string(count) +
                                         " entries does not fit the archive of " + std::to_string(length_) +
                                         " bytes");
  }
  std::vector<unsigned char> cd(cd_size);
  read_raw(cd_offset, cd.data(), cd_size, "central directory");
  uint64_t at = 0;
  entries_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_size - at < 46 || get32(&cd[at]) != kCentralSig) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": bad central directory entry " +
                                           std::to_string(i) + " at archive offset " + std::to_string(cd_offset + at));
    }
    const unsigned char* h = &cd[at];
    const uint16_t method = get16(h + 10);
    const uint16_t flags = get16(h + 8);
    ZipEntry entry;
    entry.crc = get32(h + 16);
    uint64_t csize = get32(h + 20);
    uint64_t usize = get32(h + 24);
    const uint64_t name_len = get16(h + 28), extra_len = get16(h + 30), comment_len = get16(h + 32);
    uint64_t local = get32(h + 42);
    if (cd_size - at - 46 < name_len + extra_len + comment_len) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": central directory entry " + std::to_string(i) +
                                           " runs past the directory's end");
    }
    entry.name.assign(reinterpret_cast<const char*>(h + 46), name_len);
    // ZIP64 extra field: the 64-bit values of the fields that hold 0xffffffff, in order.
    const unsigned char* x = h + 46 + name_len;
    for (uint64_t xa = 0; xa + 4 <= extra_len;) {
      const uint16_t id = get16(x + xa), len = get16(x + xa + 2);
      if (xa + 4 + len > extra_len) break;
      if (id == 0x0001) {
        const unsigned char* f = x + xa + 4;
        uint64_t left = len;
        auto take = [&](uint64_t& v) {
          if (v != 0xffffffff) return;
          if (left < 8) {
            throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": short ZIP64 extra field in entry '" +
                                                 entry.name + "'");
          }
          v = get64(f);
          f += 8;
          left -= 8;
        };
        take(usize);
        take(csize);
        take(local);
      }
      xa += 4 + len;
    }
    if (method != 0 || csize != usize) {
      throw Error(ErrorCode::kUnsupported, "zip archive " + source_ + ": entry '" + entry.name +
                                               "' is compressed (method " + std::to_string(method) +
                                               "); torch.save archives store entries uncompressed");
    }
    if (flags & 1) {
      throw Error(ErrorCode::kUnsupported, "zip archive " + source_ + ": entry '" + entry.name + "' is encrypted");
    }
    entry.size = usize;
    entry.local_header_offset = local;
    unsigned char lh[30];
    read_raw(local, lh, 30, "local file header");
    if (get32(lh) != kLocalSig) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": bad local header magic for entry '" +
                                           entry.name + "' at archive offset " + std::to_string(local));
    }
    entry.data_offset = local + 30 + get16(lh + 26) + get16(lh + 28);
    if (entry.data_offset > length_ || entry.size > length_ - entry.data_offset) {
      throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": entry '" + entry.name + "' (" +
                                           std::to_string(entry.size) + " bytes at archive offset " +
                                           std::to_string(entry.data_offset) + ") lies past the archive's end at " +
                                           std::to_string(length_));
    }
    entries_.push_back(std::move(entry));
    at += 46 + name_len + extra_len + comment_len;
  }
  if (!entries_.empty()) {
    const std::string& first = entries_.front().name;
    auto slash = first.find('/');
    if (slash != std::string::npos) prefix_ = first.substr(0, slash + 1);
  }
}

const ZipEntry* ZipReader::find(const std::string& suffix) const {
  const std::string want = prefix_ + suffix;
  for (const ZipEntry& e : entries_) {
    if (e.name == want) return &e;
  }
  for (const ZipEntry& e : entries_) {
    if (e.name == suffix) return &e;
  }
  return nullptr;
}

void ZipReader::read(const ZipEntry& entry, uint64_t offset, void* out, uint64_t length) const {
  if (offset > entry.size || length > entry.size - offset) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": read of bytes [" + std::to_string(offset) + ", " +
                                         std::to_string(offset + length) + ") of entry '" + entry.name +
                                         "' which holds " + std::to_string(entry.size) + " bytes");
  }
  read_raw(entry.data_offset + offset, out, length, "entry data");
}

std::vector<std::byte> ZipReader::read_all(const ZipEntry& entry, uint64_t max_size) const {
  if (entry.size > max_size) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": entry '" + entry.name + "' holds " +
                                         std::to_string(entry.size) + " bytes, more than the " +
                                         std::to_string(max_size) + " allowed for it");
  }
  std::vector<std::byte> out(entry.size);
  read(entry, 0, out.data(), entry.size);
  const uint32_t crc = crc32(out.data(), out.size());
  if (crc != entry.crc) {
    throw Error(ErrorCode::kCorrupt, "zip archive " + source_ + ": CRC-32 mismatch in entry '" + entry.name + "'");
  }
  return out;
}

// ---- writer ----

void ZipWriter::emit(const void* data, size_t length) {
  if (length == 0) return;
  sink_(data, length);
  pos_ += length;
}

void ZipWriter::add(const std::string& name, const void* data, size_t length) {
  const uint32_t crc = crc32(data, length);
  const bool zip64 = length >= 0xffffffffull;
  std::vector<unsigned char> h;
  put32(h, kLocalSig);
  put16(h, zip64 ? 45 : 20);
  put16(h, 0);  // flags
  put16(h, 0);  // stored
  put16(h, 0);  // time
  put16(h, 0);  // date
  put32(h, crc);
  put32(h, zip64 ? 0xffffffffu : static_cast<uint32_t>(length));
  put32(h, zip64 ? 0xffffffffu : static_cast<uint32_t>(length));
  put16(h, static_cast<uint16_t>(name.size()));
  const uint64_t zip64_extra = zip64 ? 20 : 0;
  // Pad with an "FB" extra field so that the data starts 64-byte aligned.
  const uint64_t before = pos_ + 30 + name.size() + zip64_extra + 4;
  const uint64_t pad = (kAlignment - before % kAlignment) % kAlignment;
  put16(h, static_cast<uint16_t>(zip64_extra + 4 + pad));
  h.insert(h.end(), name.begin(), name.end());
  if (zip64) {
    put16(h, 0x0001);
    put16(h, 16);
    put64(h, length);
    put64(h, length);
  }
  put16(h, 0x4246);  // "FB"
  put16(h, static_cast<uint16_t>(pad));
  h.insert(h.end(), pad, 'Z');
  written_.push_back({name, pos_, length, crc});
  emit(h.data(), h.size());
  emit(data, length);
}

void ZipWriter::finish() {
  std::vector<unsigned char> cd;
  for (const Written& w : written_) {
    const bool big_size = w.size >= 0xffffffffull;
    const bool big_offset = w.header_offset >= 0xffffffffull;
    put32(cd, kCentralSig);
    put16(cd, 45);  // made by
    put16(cd, (big_size || big_offset) ? 45 : 20);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put32(cd, w.crc);
    put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(w.size));
    put32(cd, big_size ? 0xffffffffu : static_cast<uint32_t>(w.size));
    put16(cd, static_cast<uint16_t>(w.name.size()));
    const uint16_t extra = static_cast<uint16_t>((big_size ? 16 : 0) + (big_offset ? 8 : 0));
    put16(cd, extra ? extra + 4 : 0);
    put16(cd, 0);  // comment
    put16(cd, 0);  // disk
    put16(cd, 0);  // internal attributes
    put32(cd, 0);  // external attributes
    put32(cd, big_offset ? 0xffffffffu : static_cast<uint32_t>(w.header_offset));
    cd.insert(cd.end(), w.name.begin(), w.name.end());
    if (extra) {
      put16(cd, 0x0001);
      put16(cd, extra);
      if (big_size) {
        put64(cd, w.size);
        put64(cd, w.size);
      }
      if (big_offset) put64(cd, w.header_offset);
    }
  }
  const uint64_t cd_offset = pos_;
  emit(cd.data(), cd.size());
  const uint64_t count = written_.size();
  const bool zip64 = cd_offset >= 0xffffffffull || cd.size() >= 0xffffffffull || count >= 0xffff;
  std::vector<unsigned char> end;
  if (zip64) {
    const uint64_t end64 = pos_;
    put32(end, kEnd64Sig);
    put64(end, 44);
    put16(end, 45);
    put16(end, 45);
    put32(end, 0);
    put32(end, 0);
    put64(end, count);
    put64(end, count);
    put64(end, cd.size());
    put64(end, cd_offset);
    put32(end, kEnd64LocatorSig);
    put32(end, 0);
    put64(end, end64);
    put32(end, 1);
  }
  put32(end, kEndSig);
  put16(end, 0);
  put16(end, 0);
  put16(end, zip64 ? 0xffff : static_cast<uint16_t>(count));
  put16(end, zip64 ? 0xffff : static_cast<uint16_t>(count));
  put32(end, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd.size()));
  put32(end, zip64 ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
  put16(end, 0);
  emit(end.data(), end.size());
}

}  // namespace dcpp::torch_dcp
