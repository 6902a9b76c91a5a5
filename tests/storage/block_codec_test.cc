// The block codec (src/storage/fs/block_codec.h) against blocks built by
// hand from docs/format.md ("Encoded blocks") and against the original bytes.
#include <gtest/gtest.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "storage/fs/block_codec.h"
#include "support/distributed.h"

namespace dcpp::fs_detail {
namespace {

using testing::test_seed;

std::vector<std::byte> random_bytes(size_t n, std::mt19937_64& rng) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng() & 0xff);
  return v;
}

// bf16 bit patterns of normally distributed weights (std 0.02): the high
// bytes (sign + exponent) carry little information, the low bytes a lot.
std::vector<std::byte> weight_like_bf16(size_t elements, std::mt19937_64& rng) {
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<std::byte> v(elements * 2);
  for (size_t i = 0; i < elements; ++i) {
    const float f = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t h = static_cast<uint16_t>(bits >> 16);
    std::memcpy(v.data() + 2 * i, &h, 2);
  }
  return v;
}

// Encoding 1 written by hand: group table, then every group raw or as a
// zstd frame made by plain ZSTD_compress.
std::vector<std::byte> hand_encoded(const std::vector<std::byte>& block, unsigned g, bool zstd_groups) {
  std::vector<std::vector<std::byte>> groups(g);
  for (size_t i = 0; i < block.size(); ++i) groups[i % g].push_back(block[i]);
  std::vector<std::byte> out(1 + 5 * g);
  out[0] = static_cast<std::byte>(g);
  for (unsigned j = 0; j < g; ++j) {
    std::vector<std::byte> body = groups[j];
    uint8_t mode = 0;
    if (zstd_groups && !body.empty()) {
      body.resize(ZSTD_compressBound(groups[j].size()));
      const size_t n = ZSTD_compress(body.data(), body.size(), groups[j].data(), groups[j].size(), 3);
      EXPECT_FALSE(ZSTD_isError(n));
      body.resize(n);
      mode = 1;
    }
    out[1 + 5 * j] = static_cast<std::byte>(mode);
    const uint32_t len = static_cast<uint32_t>(body.size());
    std::memcpy(out.data() + 2 + 5 * j, &len, 4);
    out.insert(out.end(), body.begin(), body.end());
  }
  return out;
}

TEST(storage_BlockCodec, DecodesHandBuiltBlocks) {
  const uint64_t seed = test_seed("BlockCodec.DecodesHandBuiltBlocks");
  std::mt19937_64 rng(seed);
  BlockDecoder decoder;
  for (unsigned g : {1u, 2u, 3u, 4u, 8u}) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{4096}, size_t{4099}, size_t{65537}}) {
      for (bool z : {false, true}) {
        std::vector<std::byte> block = random_bytes(n, rng);
        std::vector<std::byte> enc = hand_encoded(block, g, z);
        std::vector<std::byte> out(n, std::byte{0x55});
        EXPECT_EQ(decoder.decode(enc.data(), enc.size(), out.data(), n), "") << "g " << g << " n " << n;
        EXPECT_EQ(out, block) << "g " << g << " n " << n << " zstd " << z << " seed " << seed;
      }
    }
  }
}

TEST(storage_BlockCodec, RoundTripsAndShrinksWeightLikeBytes) {
  const uint64_t seed = test_seed("BlockCodec.RoundTrips");
  std::mt19937_64 rng(seed);
  BlockEncoder encoder;
  BlockDecoder decoder;
  const std::vector<std::byte> w = weight_like_bf16(1 << 19, rng);  // one 1 MiB block
  std::vector<std::byte> enc(max_encoded_size(w.size(), 2));
  const size_t n = encoder.encode(w.data(), w.size(), 2, enc.data());
  ASSERT_GT(n, 0u) << "seed " << seed;
  // The high bytes of N(0, 0.02) bf16 take about 3 bits: well under 0.8x in all.
  EXPECT_LT(n, w.size() * 8 / 10) << "seed " << seed;
  std::vector<std::byte> out(w.size());
  EXPECT_EQ(decoder.decode(enc.data(), n, out.data(), out.size()), "");
  EXPECT_EQ(out, w) << "seed " << seed;

  // Other widths and odd lengths, compressible or not.
  for (unsigned g : {1u, 2u, 4u, 8u}) {
    for (size_t len : {size_t{1}, size_t{4095}, size_t{4096}, size_t{10001}}) {
      std::vector<std::byte> block(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(len));
      std::vector<std::byte> buf(max_encoded_size(len, g));
      const size_t m = encoder.encode(block.data(), len, g, buf.data());
      if (m == 0) continue;  // not smaller: stored raw
      EXPECT_LT(m, len);
      std::vector<std::byte> back(len);
      EXPECT_EQ(decoder.decode(buf.data(), m, back.data(), len), "") << "g " << g << " len " << len;
      EXPECT_EQ(back, block) << "g " << g << " len " << len << " seed " << seed;
    }
  }
}

TEST(storage_BlockCodec, RandomBytesAreNotEncoded) {
  const uint64_t seed = test_seed("BlockCodec.RandomBytes");
  std::mt19937_64 rng(seed);
  BlockEncoder encoder;
  for (unsigned g : {1u, 2u, 4u}) {
    std::vector<std::byte> block = random_bytes(1 << 16, rng);
    std::vector<std::byte> buf(max_encoded_size(block.size(), g));
    EXPECT_EQ(encoder.encode(block.data(), block.size(), g, buf.data()), 0u) << "g " << g << " seed " << seed;
  }
}

TEST(storage_BlockCodec, DamagedBlocksAreRejectedNeverOverrun) {
  const uint64_t seed = test_seed("BlockCodec.Damaged");
  std::mt19937_64 rng(seed);
  BlockEncoder encoder;
  BlockDecoder decoder;
  const std::vector<std::byte> w = weight_like_bf16(8192, rng);
  std::vector<std::byte> enc(max_encoded_size(w.size(), 2));
  enc.resize(encoder.encode(w.data(), w.size(), 2, enc.data()));
  ASSERT_FALSE(enc.empty());
  std::vector<std::byte> out(w.size());
  // Structural damage: each is reported, none crashes (ASan watches the bounds).
  EXPECT_NE(decoder.decode(enc.data(), 0, out.data(), out.size()), "");
  EXPECT_NE(decoder.decode(enc.data(), 5, out.data(), out.size()), "");
  EXPECT_NE(decoder.decode(enc.data(), enc.size() - 1, out.data(), out.size()), "");
  EXPECT_NE(decoder.decode(enc.data(), enc.size(), out.data(), out.size() - 2), "");
  std::vector<std::byte> bad = enc;
  bad[0] = std::byte{9};
  EXPECT_NE(decoder.decode(bad.data(), bad.size(), out.data(), out.size()), "");
  bad = enc;
  bad[1] = std::byte{7};  // unknown group mode
  EXPECT_NE(decoder.decode(bad.data(), bad.size(), out.data(), out.size()), "");
  bad = enc;
  bad[2] = std::byte{0xff};
  bad[5] = std::byte{0xff};  // group length past the end
  EXPECT_NE(decoder.decode(bad.data(), bad.size(), out.data(), out.size()), "");
  // Random byte flips: either an error or some output of the right size
  // (the block checksum catches what decodes); never a crash.
  for (int i = 0; i < 2000; ++i) {
    bad = enc;
    const size_t at = rng() % bad.size();
    bad[at] ^= static_cast<std::byte>(1 + rng() % 255);
    (void)decoder.decode(bad.data(), bad.size(), out.data(), out.size());
  }
}

TEST(storage_BlockCodec, StoredSpanOfRawAndEncodedItems) {
  StorageLocation raw;
  raw.file = "f";
  raw.byte_offset = 8192;
  raw.byte_length = 10000;
  raw.block_checksums = {1, 2, 3};
  EXPECT_EQ(stored_span(raw, 0, 0, 4096), std::make_pair(uint64_t{8192}, uint64_t{8192 + 4096}));
  EXPECT_EQ(stored_span(raw, 1, 2, 4096), std::make_pair(uint64_t{8192 + 4096}, uint64_t{8192 + 10000}));
  StorageLocation enc = raw;
  enc.stored_blocks = {{1, 0, 100}, {0, 100, 4096}, {1, 8192, 50}};
  EXPECT_EQ(stored_span(enc, 0, 0, 4096), std::make_pair(uint64_t{8192}, uint64_t{8292}));
  EXPECT_EQ(stored_span(enc, 1, 2, 4096), std::make_pair(uint64_t{8292}, uint64_t{8192 + 8242}));
}

}  // namespace
}  // namespace dcpp::fs_detail
