// Writes a native checkpoint of tensors of every dtype, chunked over 3
// simulated ranks, plus each full tensor as a .npy file, for
// independent_reader.py to cross-check: dump_checkpoint <out-dir> [--compress].
// With --compress the checkpoint is saved compressed (format version 2) and
// the bytes are made compressible (few distinct high bytes per element); it
// is also an incremental save over <out>/base, a checkpoint in which every
// other tensor held different bytes, so the rest are references into it.

// Layout: <out>/ckpt (the checkpoint), <out>/dump/<n>.npy, <out>/dump/manifest.txt
// ("<key> <dtype> <n>.npy" per line).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "storage/test_planners.h"

namespace {

using namespace dcpp;

std::string npy_descr(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "<f4";
    case DType::kFloat64: return "<f8";
    case DType::kFloat16: return "<f2";
    case DType::kBFloat16: return "<u2";  // numpy has no bfloat16: raw bits
    case DType::kInt8: return "|i1";
    case DType::kInt16: return "<i2";
    case DType::kInt32: return "<i4";
    case DType::kInt64: return "<i8";
    case DType::kUInt8: return "|u1";
    case DType::kBool: return "|b1";
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E5M2: return "|u1";  // raw bits
  }
  return "|u1";
}

void write_npy(const std::string& path, const Tensor& t) {
  std::string shape = "(";
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  if (t.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = "{'descr': '" + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t n = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&n), 2);
  out << header;
  Tensor c = t.contiguous();
  if (c.nbytes() > 0) out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out) throw Error(ErrorCode::kIo, "cannot write " + path);
}

// Fills a tensor with deterministic bytes (every bit pattern is a valid
// element for the byte comparison, except bool, which must be 0 or 1).
Tensor make(const Shape& shape, DType dtype, uint64_t seed, bool compressible) {
  const size_t elem = dtype_size(dtype);
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<unsigned char*>(t.nbytes() ? t.data_ptr() : nullptr);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < t.nbytes(); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = dtype == DType::kBool ? static_cast<unsigned char>(x & 1) : static_cast<unsigned char>(x >> 24);
    // Like the sign-and-exponent byte of trained weights: a few values.
    if (compressible && dtype != DType::kBool && i % elem == elem - 1) p[i] = static_cast<unsigned char>(0x3C | (x & 3));
  }
  return t;
}

// Shards along `dim` over 3 ranks with docs/design.md's chunk math.
void shard(std::vector<testing::TestSavePlanner>& ranks, const std::string& key, const Tensor& t, int64_t dim) {
  const int64_t s = t.size(dim), c = (s + 2) / 3;
  for (int64_t r = 0; r < 3; ++r) {
    int64_t lo = std::min(r * c, s), hi = std::min((r + 1) * c, s);
    if (hi <= lo) continue;
    Shape off(t.dim(), 0);
    off[dim] = lo;
    ranks[r].add_chunk(key, t.narrow(dim, lo, hi - lo), off, t.sizes());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool compress = argc == 3 && std::string(argv[2]) == "--compress";
  if (argc != 2 && !compress) {
    std::cerr << "usage: dump_checkpoint <out-dir> [--compress]\n";
    return 2;
  }
  try {
    const std::string out = argv[1];
    std::filesystem::remove_all(out);
    std::filesystem::create_directories(out + "/dump");
    std::vector<testing::TestSavePlanner> ranks(3), base_ranks(3);
    struct Spec {
      std::string key;
      Shape shape;
      DType dtype;
      int64_t dim;  // shard dim, -1: written whole by rank 1
    };
    const std::vector<Spec> specs = {
        {"model.embed.weight", {37, 29}, DType::kFloat32, 0},
        {"model.net1.weight", {64, 100}, DType::kBFloat16, 1},
        {"model.net1.bias", {50}, DType::kFloat16, 0},
        {"model.net2.weight", {3, 7, 300}, DType::kFloat64, 2},
        {"optim.state.step_counts", {1000}, DType::kInt64, 0},
        {"buffers.int32", {9, 11}, DType::kInt32, 1},
        {"buffers.int16", {6}, DType::kInt16, 0},
        {"buffers.int8", {5, 1}, DType::kInt8, 0},
        {"buffers.uint8", {2, 2049}, DType::kUInt8, 1},
        {"buffers.mask", {17, 5}, DType::kBool, 0},
        {"buffers.tiny_mask", {3}, DType::kBool, -1},
        {"buffers.fp8_e4m3", {40, 40}, DType::kFloat8E4M3FN, 0},
        {"buffers.fp8_e5m2", {2, 3}, DType::kFloat8E5M2, 0},  // rank 2 owns nothing
        {"scalar.lr", {}, DType::kFloat64, -1},
        {"replicated.table", {10, 30}, DType::kFloat32, -1},
    };
    std::ofstream manifest(out + "/dump/manifest.txt");
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      Tensor t = make(s.shape, s.dtype, i + 1, compress);
      Tensor before = i % 2 ? make(s.shape, s.dtype, i + 101, compress) : t;
      if (s.dim < 0) {
        ranks[1].add_chunk(s.key, t, Shape(t.dim(), 0), t.sizes());
        base_ranks[1].add_chunk(s.key, before, Shape(t.dim(), 0), t.sizes());
      } else {
        shard(ranks, s.key, t, s.dim);
        shard(base_ranks, s.key, before, s.dim);
      }
      std::string file = std::to_string(i) + ".npy";
      write_npy(out + "/dump/" + file, t);
      manifest << s.key << " " << dtype_name(s.dtype) << " " << file << "\n";
    }
    ranks[0].add_value("meta.note", ValueKind::kString, Bytes{std::byte{'o'}, std::byte{'k'}});
    base_ranks[0].add_value("meta.note", ValueKind::kString, Bytes{std::byte{'o'}, std::byte{'k'}});
    FileSystemWriterOptions options;
    options.block_size = 4096;
    options.compress = compress;
    if (compress) {
      FileSystemWriterOptions base_options = options;
      base_options.content_hashes = true;
      testing::run_save(out + "/base", base_ranks, base_options);
      options.base = std::make_shared<const Metadata>(read_fs_metadata(*default_file_system(), out + "/base"));
      options.base_name = "base";
    }
    testing::run_save(out + "/ckpt", ranks, options);
    std::cout << "wrote " << specs.size() << " tensors to " << out << "/ckpt\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dump_checkpoint: " << e.what() << "\n";
    return 1;
  }
}
