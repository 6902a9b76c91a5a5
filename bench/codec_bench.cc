// The block codec of the native format on one core: compression ratio and
// encode/decode throughput over a file of raw little-endian elements, cut
// into checksum blocks as the writer cuts them, beside plain zstd (levels 1
// and 3) on the same blocks with the same library. Every decode is compared
// with the original bytes. bench/codec_peers.py runs it on real weights and
// adds ZipNN (`make bench-peers`).
//
//   codec_bench --input FILE --width 2|4|... [--block BYTES] [--level N] [--runs N]
//
// Prints one JSON object: for "dcpp", "zstd1", "zstd3": ratio (stored /
// raw), encode_gbs and decode_gbs (raw bytes per second, 1e9, median of the
// runs).
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "storage/fs/block_codec.h"

namespace {

using Clock = std::chrono::steady_clock;
using dcpp::fs_detail::BlockDecoder;
using dcpp::fs_detail::BlockEncoder;

struct Result {
  double ratio = 0;
  double encode_gbs = 0;
  double decode_gbs = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One codec: encode(block, n, dst) → stored length (0 = kept raw);
// decode(stored, len, dst, n) → ok.
struct Codec {
  std::function<size_t(const std::byte*, size_t, std::byte*)> encode;
  std::function<bool(const std::byte*, size_t, std::byte*, size_t)> decode;
  size_t bound;
};

Result run(const Codec& codec, const std::vector<std::byte>& data, size_t block, int runs) {
  const size_t nblocks = (data.size() + block - 1) / block;
  std::vector<std::byte> out(nblocks * codec.bound);
  std::vector<size_t> offset(nblocks), length(nblocks);
  std::vector<std::byte> back(data.size());
  std::vector<double> enc, dec;
  uint64_t stored = 0;
  for (int r = 0; r < runs; ++r) {
    stored = 0;
    auto t0 = Clock::now();
    for (size_t b = 0; b < nblocks; ++b) {
      const size_t n = std::min(block, data.size() - b * block);
      offset[b] = b * codec.bound;
      length[b] = codec.encode(data.data() + b * block, n, out.data() + offset[b]);
      stored += length[b] ? length[b] : n;
    }
    enc.push_back(static_cast<double>(data.size()) / seconds_since(t0) / 1e9);
    t0 = Clock::now();
    for (size_t b = 0; b < nblocks; ++b) {
      const size_t n = std::min(block, data.size() - b * block);
      if (length[b] == 0) {
        std::memcpy(back.data() + b * block, data.data() + b * block, n);  // a raw block is read as it is
      } else if (!codec.decode(out.data() + offset[b], length[b], back.data() + b * block, n)) {
        std::fprintf(stderr, "codec_bench: block %zu does not decode\n", b);
        std::exit(1);
      }
    }
    dec.push_back(static_cast<double>(data.size()) / seconds_since(t0) / 1e9);
    if (std::memcmp(back.data(), data.data(), data.size()) != 0) {
      std::fprintf(stderr, "codec_bench: decoded bytes differ from the input\n");
      std::exit(1);
    }
  }
  return {static_cast<double>(stored) / static_cast<double>(data.size()), median(enc), median(dec)};
}

Codec zstd_codec(int level, size_t block) {
  auto cctx = std::shared_ptr<ZSTD_CCtx>(ZSTD_createCCtx(), ZSTD_freeCCtx);
  auto dctx = std::shared_ptr<ZSTD_DCtx>(ZSTD_createDCtx(), ZSTD_freeDCtx);
  Codec c;
  c.bound = ZSTD_compressBound(block);
  c.encode = [cctx, level](const std::byte* src, size_t n, std::byte* dst) -> size_t {
    const size_t r = ZSTD_compressCCtx(cctx.get(), dst, ZSTD_compressBound(n), src, n, level);
    return ZSTD_isError(r) || r >= n ? 0 : r;
  };
  c.decode = [dctx](const std::byte* src, size_t len, std::byte* dst, size_t n) {
    return ZSTD_decompressDCtx(dctx.get(), dst, n, src, len) == n;
  };
  return c;
}

void print(const char* name, const Result& r, bool last) {
  std::printf("  \"%s\": {\"ratio\": %.4f, \"encode_gbs\": %.3f, \"decode_gbs\": %.3f}%s\n", name, r.ratio,
              r.encode_gbs, r.decode_gbs, last ? "" : ",");
}

}  // namespace

int main(int argc, char** argv) {
  std::string input;
  unsigned width = 2;
  size_t block = 1 << 20;
  int level = -1000, runs = 3;  // the writer's default (FileSystemWriterOptions::compress_level)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--input") input = argv[i + 1];
    else if (a == "--width") width = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else if (a == "--block") block = std::stoul(argv[i + 1]);
    else if (a == "--level") level = std::stoi(argv[i + 1]);
    else if (a == "--runs") runs = std::stoi(argv[i + 1]);
  }
  if (input.empty() || block == 0 || block > (16u << 20) || runs < 1) {
    std::fprintf(stderr, "usage: codec_bench --input FILE --width W [--block BYTES<=16MiB] [--level N] [--runs N]\n");
    return 2;
  }
  std::ifstream in(input, std::ios::binary | std::ios::ate);
  std::vector<std::byte> data(in ? static_cast<size_t>(in.tellg()) : 0);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (data.empty()) {
    std::fprintf(stderr, "codec_bench: cannot read %s\n", input.c_str());
    return 1;
  }
  auto encoder = std::make_shared<BlockEncoder>(dcpp::fs_detail::CodecOptions{.zstd_level = level});
  auto decoder = std::make_shared<BlockDecoder>();
  Codec ours;
  ours.bound = dcpp::fs_detail::max_encoded_size(block, width);
  ours.encode = [encoder, width](const std::byte* src, size_t n, std::byte* dst) {
    return encoder->encode(src, n, width, dst);
  };
  ours.decode = [decoder](const std::byte* src, size_t len, std::byte* dst, size_t n) {
    return decoder->decode(src, len, dst, n).empty();
  };
  const Result dcpp = run(ours, data, block, runs);
  const Result z1 = run(zstd_codec(1, block), data, block, runs);
  const Result z3 = run(zstd_codec(3, block), data, block, runs);
  std::printf("{\n  \"bytes\": %zu, \"block\": %zu, \"width\": %u, \"level\": %d, \"runs\": %d,\n", data.size(), block,
              width, level, runs);
  print("dcpp", dcpp, false);
  print("zstd1", z1, false);
  print("zstd3", z3, true);
  std::printf("}\n");
  return 0;
}
