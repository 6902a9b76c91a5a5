#include <gtest/gtest.h>
#include <simdjson.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "support/distributed.h"
#include "support/expect_error.h"

namespace dcpp {

using testing::expect_error;
namespace {

using testing::test_seed;

// ---- the worked example of docs/format.md §3.9, written out by hand ----

constexpr uint64_t kChunkSum = 0x1122334455667788ull;
constexpr uint64_t kValueSum = 0x99aabbccddeeff00ull;

Metadata tiny_metadata() {
  Metadata md;
  md.dcpp_version = "0.1.0";
  md.world_size = 1;
  md.block_size = 4096;
  TensorMeta& w = md.tensors["w"];
  w.dtype = DType::kFloat32;
  w.global_shape = {2};
  w.chunks.push_back(ChunkMeta{{0}, {2}, StorageLocation{"data-00000.bin", 0, 8, {kChunkSum}, {}, std::nullopt}});
  md.values["step"] = ValueMeta{ValueKind::kInt64, StorageLocation{"data-00000.bin", 4096, 8, {kValueSum}, {}, std::nullopt}};
  md.paths["w"] = {PathElement{false, "w", 0}};
  md.paths["step"] = {PathElement{false, "step", 0}};
  return md;
}

class Bytes8 {
 public:
  Bytes8& raw(std::initializer_list<int> bytes) {
    for (int b : bytes) v.push_back(static_cast<std::byte>(b));
    return *this;
  }
  Bytes8& text(const std::string& s) {
    for (char c : s) v.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes8& le(uint64_t x, int n) {
    for (int i = 0; i < n; ++i) v.push_back(static_cast<std::byte>((x >> (8 * i)) & 0xff));
    return *this;
  }
  std::vector<std::byte> v;
};

// v2: the same, format_version 2, with the chunk stored as one encoded block
// of 5 bytes (docs/format.md §3.4: layout byte 1, then the block table) and
// the value raw (layout byte 0).
std::vector<std::byte> tiny_golden(bool v2 = false) {
  Bytes8 b;
  b.raw({0x44, 0x43, 0x50, 0x50, 0x4D, 0x45, 0x54, 0x41});  // DCPPMETA
  b.raw({v2 ? 0x02 : 0x01, 0, 0, 0});                      // format_version
  b.raw({0x04, 0, 0, 0}).text("dcpp");
  b.raw({0x05, 0, 0, 0}).text("0.1.0");
  b.raw({0x01, 0, 0, 0});                          // world_size
  b.raw({0x00, 0x10, 0, 0, 0, 0, 0, 0});           // block_size 4096
  b.raw({0x01, 0, 0, 0});                          // file_count
  b.raw({0x0E, 0, 0, 0}).text("data-00000.bin");  // file 0
  b.raw({0x01, 0, 0, 0, 0, 0, 0, 0});              // tensor_count
  b.raw({0x01, 0, 0, 0}).text("w");
  b.raw({0x00});                       // float32
  b.raw({0x01, 0, 0, 0});              // ndim
  b.raw({0x02, 0, 0, 0, 0, 0, 0, 0});  // global shape [2]
  b.raw({0x01, 0, 0, 0, 0, 0, 0, 0});  // chunk_count
  b.raw({0x00, 0, 0, 0, 0, 0, 0, 0});  // offsets [0]
  b.raw({0x02, 0, 0, 0, 0, 0, 0, 0});  // sizes [2]
  b.raw({0x00, 0, 0, 0});              // file_index 0
  b.raw({0x00, 0, 0, 0, 0, 0, 0, 0});  // byte_offset 0
  b.raw({0x08, 0, 0, 0, 0, 0, 0, 0});  // byte_length 8
  b.le(kChunkSum, 8);
  if (v2) {
    b.raw({0x01});                       // flags: stored-block table
    b.raw({0x01});                       // block 0: encoding 1 (grouped)
    b.raw({0x00, 0, 0, 0, 0, 0, 0, 0});  // stored offset 0
    b.raw({0x05, 0, 0, 0, 0, 0, 0, 0});  // stored length 5
  }
  b.raw({0x01, 0, 0, 0, 0, 0, 0, 0});  // value_count
  b.raw({0x04, 0, 0, 0}).text("step");
  b.raw({0x00});                          // int64
  b.raw({0x00, 0, 0, 0});                 // file_index 0
  b.raw({0x00, 0x10, 0, 0, 0, 0, 0, 0});  // byte_offset 4096
  b.raw({0x08, 0, 0, 0, 0, 0, 0, 0});     // byte_length 8
  b.le(kValueSum, 8);
  if (v2) b.raw({0x00});  // flags: raw, no content hash
  b.raw({0x02, 0, 0, 0, 0, 0, 0, 0});  // path_count
  b.raw({0x04, 0, 0, 0}).text("step");
  b.raw({0x01, 0, 0, 0, 0x00, 0x04, 0, 0, 0}).text("step");
  b.raw({0x01, 0, 0, 0}).text("w");
  b.raw({0x01, 0, 0, 0, 0x00, 0x01, 0, 0, 0}).text("w");
  b.le(XXH3_64bits(b.v.data(), b.v.size()), 8);
  return b.v;
}

// Rewrites the trailing checksum so a mutation reaches the parser.
void fix_checksum(std::vector<std::byte>& bytes) {
  uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - 8);
  std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
}


TEST(storage_MetadataCodec, GoldenEncodingMatchesTheDocumentByteForByte) {
  std::vector<std::byte> encoded = encode_metadata(tiny_metadata());
  std::vector<std::byte> golden = tiny_golden();
  ASSERT_EQ(encoded.size(), golden.size());
  for (size_t i = 0; i < golden.size(); ++i) {
    ASSERT_EQ(encoded[i], golden[i]) << "first difference at byte " << i;
  }
  EXPECT_EQ(decode_metadata(golden.data(), golden.size(), "golden"), tiny_metadata());
}

TEST(storage_MetadataCodec, Version2GoldenEncodingWithAStoredBlockTable) {
  Metadata md = tiny_metadata();
  md.format_version = 2;
  md.tensors["w"].chunks[0].location.stored_blocks = {StoredBlock{1, 0, 5}};
  std::vector<std::byte> encoded = encode_metadata(md);
  std::vector<std::byte> golden = tiny_golden(true);
  ASSERT_EQ(encoded.size(), golden.size());
  for (size_t i = 0; i < golden.size(); ++i) ASSERT_EQ(encoded[i], golden[i]) << "first difference at byte " << i;
  EXPECT_EQ(decode_metadata(golden.data(), golden.size(), "golden2"), md);
  // A version 1 encoding cannot describe encoded blocks.
  md.format_version = 1;
  expect_error([&] { encode_metadata(md); }, ErrorCode::kInvalidArgument);
}

TEST(storage_MetadataCodec, Version2BadBlockTablesAreCorrupt) {
  // The chunk's block table, found in the golden bytes.
  std::vector<std::byte> g = tiny_golden(true);
  const std::vector<std::byte> tbl = {std::byte{1}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0},
                                      std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                      std::byte{5}};
  auto at = std::search(g.begin(), g.end(), tbl.begin(), tbl.end());
  ASSERT_NE(at, g.end());
  const size_t pos = static_cast<size_t>(at - g.begin());
  auto bad = [&](size_t offset, uint8_t value) {
    std::vector<std::byte> bytes = g;
    bytes[pos + offset] = std::byte{value};
    fix_checksum(bytes);
    return expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "bad"); }, ErrorCode::kCorrupt);
  };
  bad(0, 7);   // unknown flag bits
  bad(1, 9);   // unknown encoding
  bad(2, 1);   // first block not at offset 0
  bad(10, 0);  // stored length 0
  Error e = bad(1, 0);  // raw block of 5 bytes for 8 decoded
  EXPECT_NE(e.message().find("key 'w' block 0"), std::string::npos) << e.message();
}

// Random metadata of every shape the format allows.
Metadata random_metadata(std::mt19937_64& rng) {
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Metadata md;
  md.dcpp_version = "v" + std::to_string(pick(0, 99));
  md.world_size = static_cast<int32_t>(pick(1, 9));
  md.block_size = static_cast<uint64_t>(pick(1, 5000));
  auto location = [&](uint64_t length) {
    StorageLocation loc;
    if (length == 0 && pick(0, 1)) return loc;  // "no file"
    loc.file = pick(0, 3) ? "data-0000" + std::to_string(pick(0, 9)) + ".bin" : "sub/dir/f" + std::to_string(pick(0, 3));
    loc.byte_offset = static_cast<uint64_t>(pick(0, 1000)) * 4096;
    loc.byte_length = length;
    uint64_t blocks = (length + md.block_size - 1) / md.block_size;
    for (uint64_t i = 0; i < blocks; ++i) loc.block_checksums.push_back(rng());
    return loc;
  };
  auto random_key = [&] {
    std::string k;
    int n = static_cast<int>(pick(1, 12));
    for (int i = 0; i < n; ++i) k.push_back(static_cast<char>(pick(0, 3) ? pick('a', 'z') : pick(1, 255)));
    return k;
  };
  int ntensors = static_cast<int>(pick(0, 12));
  for (int i = 0; i < ntensors; ++i) {
    TensorMeta t;
    t.dtype = static_cast<DType>(pick(0, kNumDTypes - 1));
    int ndim = static_cast<int>(pick(0, 4));
    for (int d = 0; d < ndim; ++d) t.global_shape.push_back(pick(0, 9));
    int nchunks = static_cast<int>(pick(0, 5));
    for (int c = 0; c < nchunks; ++c) {
      ChunkMeta ch;
      for (int d = 0; d < ndim; ++d) {
        int64_t off = pick(0, t.global_shape[d]);
        ch.offsets.push_back(off);
        ch.sizes.push_back(pick(0, t.global_shape[d] - off));
      }
      ch.location = location(static_cast<uint64_t>(shape_numel(ch.sizes)) * dtype_size(t.dtype));
      t.chunks.push_back(ch);
    }
    md.tensors[random_key()] = t;
  }
  int nvalues = static_cast<int>(pick(0, 6));
  for (int i = 0; i < nvalues; ++i) {
    std::string key = random_key();
    if (md.tensors.count(key)) continue;
    md.values[key] = ValueMeta{static_cast<ValueKind>(pick(0, 4)), location(static_cast<uint64_t>(pick(0, 9000)))};
  }
  for (const auto& [k, _] : md.tensors) {
    std::vector<PathElement> path;
    int n = static_cast<int>(pick(1, 4));
    for (int i = 0; i < n; ++i) {
      if (pick(0, 1)) {
        path.push_back(PathElement{true, "", pick(-5, 1000000)});
      } else {
        path.push_back(PathElement{false, random_key(), 0});
      }
    }
    md.paths[k] = path;
  }
  return md;
}

TEST(storage_MetadataCodec, RandomRoundTrip) {
  uint64_t seed = test_seed("MetadataCodec.RandomRoundTrip");
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 300; ++iter) {
    Metadata md = random_metadata(rng);
    std::vector<std::byte> bytes = encode_metadata(md);
    Metadata back = decode_metadata(bytes.data(), bytes.size(), "random");
    ASSERT_EQ(back, md) << "iteration " << iter << " seed " << seed;
    ASSERT_EQ(encode_metadata(back), bytes) << "iteration " << iter;
  }
}

TEST(storage_MetadataCodec, EveryTruncationIsCorrupt) {
  std::vector<std::byte> golden = tiny_golden();
  for (size_t n = 0; n < golden.size(); ++n) {
    try {
      decode_metadata(golden.data(), n, "truncated");
      FAIL() << "a file cut to " << n << " bytes decoded";
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), ErrorCode::kCorrupt) << n << ": " << e.what();
      ASSERT_NE(e.message().find("'truncated'"), std::string::npos) << e.message();
      ASSERT_NE(e.message().find("byte offset"), std::string::npos) << e.message();
    }
  }
}

TEST(storage_MetadataCodec, EveryByteFlipIsCorrupt) {
  uint64_t seed = test_seed("MetadataCodec.EveryByteFlipIsCorrupt");
  std::mt19937_64 rng(seed);
  std::vector<std::byte> golden = tiny_golden();
  for (size_t i = 0; i < golden.size(); ++i) {
    std::vector<std::byte> bad = golden;
    bad[i] ^= static_cast<std::byte>(1u << (rng() % 8));
    expect_error([&] { decode_metadata(bad.data(), bad.size(), "flipped"); }, ErrorCode::kCorrupt);
  }
}

// Mutations with the checksum recomputed reach the parser itself: it must
// answer Corrupt (or Unsupported for a raised version) or decode, never
// crash or allocate wildly. Run under DCPP_SANITIZE for full effect.
TEST(storage_MetadataCodec, HostileMutationsWithValidChecksumNeverCrash) {
  uint64_t seed = test_seed("MetadataCodec.HostileMutationsWithValidChecksumNeverCrash");
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::byte>> bases = {tiny_golden()};
  for (int i = 0; i < 4; ++i) bases.push_back(encode_metadata(random_metadata(rng)));
  int decoded = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<std::byte> bytes = bases[rng() % bases.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (bytes.size() - 8);
      switch (rng() % 3) {
        case 0: bytes[at] = static_cast<std::byte>(rng()); break;
        case 1:  // a huge length or count
          for (size_t k = at; k < std::min(at + 4, bytes.size() - 8); ++k) bytes[k] = std::byte{0xff};
          break;
        default: bytes[at] ^= std::byte{0x80}; break;
      }
    }
    if (rng() % 8 == 0) bytes.resize(12 + rng() % (bytes.size() - 12));  // cut, then re-sum
    if (bytes.size() < 20) continue;
    fix_checksum(bytes);
    try {
      decode_metadata(bytes.data(), bytes.size(), "fuzz");
      ++decoded;
    } catch (const Error& e) {
      ASSERT_TRUE(e.code() == ErrorCode::kCorrupt || e.code() == ErrorCode::kUnsupported)
          << "iteration " << iter << " seed " << seed << ": " << e.what();
      ++rejected;
    }
  }
  std::cout << "hostile mutations: " << decoded << " decoded, " << rejected << " rejected\n";
  EXPECT_GT(rejected, 0);
}

TEST(storage_MetadataCodec, NewerVersionSaysSoPlainly) {
  std::vector<std::byte> bytes = tiny_golden();
  bytes[8] = std::byte{7};
  fix_checksum(bytes);
  Error e = expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "new.metadata"); },
                         ErrorCode::kUnsupported);
  EXPECT_NE(e.message().find("checkpoint format version 7 is newer than this dcpp supports (max 2); upgrade dcpp"),
            std::string::npos)
      << e.message();
  // Version 0 never existed.
  bytes[8] = std::byte{0};
  fix_checksum(bytes);
  expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "zero"); }, ErrorCode::kCorrupt);
}

TEST(storage_MetadataCodec, HostileFileNamesAreCorruptNamingKeyAndFile) {
  // Same length as the valid name they replace, so only the name changes.
  for (const std::string& evil : std::vector<std::string>{"/etc/passwd", "../x", "a/../../b", "a//b", "./x",
                                                            std::string("ab\0c", 4)}) {
    Metadata md = tiny_metadata();
    std::string placeholder(evil.size(), 'q');
    md.tensors["w"].chunks[0].location.file = placeholder;
    md.values["step"].location.file = placeholder;
    std::vector<std::byte> bytes = encode_metadata(md);
    std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    size_t at = s.find(placeholder);
    ASSERT_NE(at, std::string::npos);
    std::memcpy(bytes.data() + at, evil.data(), evil.size());
    fix_checksum(bytes);
    Error e = expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "evil"); }, ErrorCode::kCorrupt);
    EXPECT_NE(e.message().find("'" + evil + "'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("key 'w'"), std::string::npos) << e.message();  // tensors are decoded first

    // The encoder refuses to write such names at all.
    Metadata direct = tiny_metadata();
    direct.values["step"].location.file = evil;
    expect_error([&] { encode_metadata(direct); }, ErrorCode::kInvalidArgument);
  }
  EXPECT_NO_THROW(validate_relative_file_name("k", "data-00001.bin"));
  EXPECT_NO_THROW(validate_relative_file_name("k", "a/b/c..d"));
  expect_error([] { validate_relative_file_name("k", ""); }, ErrorCode::kCorrupt);
  expect_error([] { validate_relative_file_name("k", "a/"); }, ErrorCode::kCorrupt);
  expect_error([] { validate_relative_file_name("k", ".."); }, ErrorCode::kCorrupt);
}

TEST(storage_MetadataCodec, StructuralChecksNameTheProblem) {
  // A chunk whose byte length disagrees with its sizes × dtype.
  Metadata md = tiny_metadata();
  md.tensors["w"].chunks[0].location.byte_length = 8;
  md.tensors["w"].chunks[0].sizes = {1};  // 1 float32 = 4 bytes, not 8
  std::vector<std::byte> bytes = encode_metadata(md);
  Error e = expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "m"); }, ErrorCode::kCorrupt);
  EXPECT_NE(e.message().find("key 'w'"), std::string::npos) << e.message();

  // A chunk outside the global shape.
  md = tiny_metadata();
  md.tensors["w"].chunks[0].offsets = {1};
  bytes = encode_metadata(md);
  e = expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "m"); }, ErrorCode::kCorrupt);
  EXPECT_NE(e.message().find("outside its global shape"), std::string::npos) << e.message();

  // Wrong number of checksums cannot even be encoded.
  md = tiny_metadata();
  md.tensors["w"].chunks[0].location.block_checksums.push_back(1);
  expect_error([&] { encode_metadata(md); }, ErrorCode::kInvalidArgument);

  // A count field claiming 2^64-1 entries.
  bytes = tiny_golden();
  std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  size_t at = s.find("data-00000.bin") + 14;  // tensor_count follows the file table
  std::memset(bytes.data() + at, 0xff, 8);
  fix_checksum(bytes);
  e = expect_error([&] { decode_metadata(bytes.data(), bytes.size(), "m"); }, ErrorCode::kCorrupt);
  EXPECT_NE(e.message().find("byte offset " + std::to_string(at)), std::string::npos) << e.message();
}

TEST(storage_MetadataCodec, JsonRenderingIsValidAndComplete) {
  Metadata md = tiny_metadata();
  md.tensors["a \"quoted\"\n key"] = TensorMeta{DType::kBFloat16, {}, {}};
  md.paths["w"] = {PathElement{false, "model", 0}, PathElement{true, "", 3}, PathElement{false, "w", 0}};
  for (bool pretty : {true, false}) {
    std::string json = metadata_to_json(md, pretty);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    auto err = parser.parse(json).get(doc);
    ASSERT_FALSE(err) << simdjson::error_message(err) << "\n" << json;
    EXPECT_EQ(std::string_view(doc["format"]), "dcpp");
    EXPECT_EQ(uint64_t(doc["format_version"]), 1u);
    EXPECT_EQ(uint64_t(doc["block_size"]), 4096u);
    auto w = doc["tensors"]["w"];
    EXPECT_EQ(std::string_view(w["dtype"]), "float32");
    auto chunk = w["chunks"].at(0);
    EXPECT_EQ(std::string_view(chunk["file"]), "data-00000.bin");
    EXPECT_EQ(uint64_t(chunk["byte_length"]), 8u);
    EXPECT_EQ(std::string_view(chunk["block_checksums"].at(0)), "1122334455667788");
    EXPECT_EQ(std::string_view(doc["tensors"]["a \"quoted\"\n key"]["dtype"]), "bfloat16");
    EXPECT_EQ(std::string_view(doc["values"]["step"]["kind"]), "int64");
    EXPECT_EQ(uint64_t(doc["values"]["step"]["byte_offset"]), 4096u);
    auto path = doc["paths"]["w"];
    EXPECT_EQ(std::string_view(path.at(0)), "model");
    EXPECT_EQ(int64_t(path.at(1)), 3);
  }
}

}  // namespace
}  // namespace dcpp
