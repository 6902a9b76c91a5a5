// Native metadata encode/decode at docs/design.md §3's scale: 1024 ranks × 1000
// tensors = 1M chunks. Prints the encoded size; compare the times with the
// "seconds, not tens of seconds" requirement (a DOM JSON took ≈ 8 s).
#include <benchmark/benchmark.h>

#include <cstdio>

#include "dcpp/fs_storage.h"

namespace {

using namespace dcpp;

const Metadata& big_metadata() {
  static const Metadata md = [] {
    constexpr int kRanks = 1024, kTensors = 1000;
    Metadata m;
    m.dcpp_version = "bench";
    m.world_size = kRanks;
    m.block_size = 1 << 20;
    std::vector<uint64_t> file_end(kRanks, 0);
    for (int t = 0; t < kTensors; ++t) {
      char key[64];
      std::snprintf(key, sizeof key, "model.layers.%d.mlp.weight", t);
      TensorMeta& tm = m.tensors[key];
      tm.dtype = DType::kBFloat16;
      tm.global_shape = {4096, 1024};
      tm.chunks.reserve(kRanks);
      for (int r = 0; r < kRanks; ++r) {
        const uint64_t len = 4 * 1024 * 2;
        tm.chunks.push_back(ChunkMeta{{int64_t{4} * r, 0}, {4, 1024},
                                      StorageLocation{data_file_name(r), file_end[r], len,
                                                      {0x9E3779B97F4A7C15ull * (t * kRanks + r + 1)}, {}, std::nullopt}});
        file_end[r] = align_up(file_end[r] + len, kIoAlignment);
      }
      m.paths[key] = {PathElement{false, "model", 0}, PathElement{false, "layers", 0}, PathElement{true, "", t}};
    }
    return m;
  }();
  return md;
}

void BM_EncodeMetadata1MChunks(benchmark::State& state) {
  const Metadata& md = big_metadata();
  size_t bytes = 0;
  for (auto _ : state) {
    auto encoded = encode_metadata(md);
    bytes = encoded.size();
    benchmark::DoNotOptimize(encoded.data());
  }
  state.counters["MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_DecodeMetadata1MChunks(benchmark::State& state) {
  const auto encoded = encode_metadata(big_metadata());
  for (auto _ : state) {
    Metadata md = decode_metadata(encoded.data(), encoded.size(), "bench");
    benchmark::DoNotOptimize(md.tensors.size());
  }
  state.counters["MB"] = static_cast<double>(encoded.size()) / 1e6;
}

void BM_MetadataToJson1MChunks(benchmark::State& state) {
  const Metadata& md = big_metadata();
  for (auto _ : state) {
    std::string json = metadata_to_json(md, false);
    benchmark::DoNotOptimize(json.data());
    state.counters["MB"] = static_cast<double>(json.size()) / 1e6;
  }
}

BENCHMARK(BM_EncodeMetadata1MChunks)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_DecodeMetadata1MChunks)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_MetadataToJson1MChunks)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
