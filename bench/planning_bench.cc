// Planning at scale, no real I/O: a save and a load planned for N simulated
// ranks × 1000 tensors (N = 1024: about 1M chunks). Each phase is reported
// in seconds for N = 128 … 1024, so the growth (target: O(n log n)) can be
// read off the table; the four save phases at 1024 ranks should total under 5 s.
//   global planning   DefaultSavePlanner::create_global_plan (dedup of the
//                     replicated items, validation, final per-rank plans)
//   validation        chunk tiling checks alone (bounds, overlap, coverage)
//   serialisation     encode_metadata of the resulting metadata
//   parsing           decode_metadata (with its validation)
//   load planning     DefaultLoadPlanner set_up + create_local_plan for one
//                     rank that wants every tensor whole (one read item per
//                     saved chunk: N × 1000 items)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "dcpp/chunk_coverage.h"
#include "dcpp/fs_storage.h"
#include "dcpp/planner.h"
#include "synthetic_plans.h"

namespace {

using namespace dcpp;

constexpr int kTensors = 1000;
constexpr int kReplicated = 10;  // of which replicated on every rank (biases, norms)
using bench::synthetic_key;

std::vector<SavePlan> local_plans(int ranks) { return bench::synthetic_local_plans(ranks, kTensors, kReplicated); }

// The metadata a save of `finals` writes (locations laid out as the writer would).
Metadata metadata_of(const std::vector<SavePlan>& finals, int ranks) {
  Metadata md;
  md.dcpp_version = "bench";
  md.world_size = ranks;
  md.block_size = 1 << 20;
  for (size_t r = 0; r < finals.size(); ++r) {
    uint64_t end = 0;
    for (const WriteItem& item : finals[r].items) {
      TensorMeta& tm = md.tensors[item.fqn];
      tm.dtype = item.dtype;
      tm.global_shape = item.global_shape;
      StorageLocation loc = bench::synthetic_location(static_cast<int>(r), end, item.nbytes);
      tm.chunks.push_back(ChunkMeta{item.offsets, item.sizes, std::move(loc)});
      end = align_up(end + item.nbytes, kIoAlignment);
      md.paths[item.fqn] = {PathElement{false, item.fqn, 0}};
    }
  }
  return md;
}

void BM_GlobalSavePlanning(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  size_t items = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto plans = local_plans(ranks);
    DefaultSavePlanner planner;
    state.ResumeTiming();
    auto finals = planner.create_global_plan(std::move(plans));
    items = 0;
    for (const auto& p : finals) items += p.items.size();
    benchmark::DoNotOptimize(finals.data());
  }
  state.counters["chunks"] = static_cast<double>(items);
}

void BM_Validation(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  std::map<std::string, std::pair<Shape, std::vector<ChunkBox>>> boxes;
  for (const SavePlan& p : local_plans(ranks)) {
    for (const WriteItem& item : p.items) {
      auto& [shape, list] = boxes[item.fqn];
      shape = item.global_shape;
      if (list.empty() || item.global_shape.size() == 2) list.push_back({item.offsets, item.sizes, 0});
    }
  }
  for (auto _ : state) {
    for (const auto& [key, v] : boxes) validate_chunk_tiling(key, v.first, v.second);
  }
}

void BM_MetadataSerialisation(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  DefaultSavePlanner planner;
  const Metadata md = metadata_of(planner.create_global_plan(local_plans(ranks)), ranks);
  size_t bytes = 0;
  for (auto _ : state) {
    auto encoded = encode_metadata(md);
    bytes = encoded.size();
    benchmark::DoNotOptimize(encoded.data());
  }
  state.counters["MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_MetadataParsing(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  DefaultSavePlanner planner;
  const auto encoded = encode_metadata(metadata_of(planner.create_global_plan(local_plans(ranks)), ranks));
  for (auto _ : state) {
    Metadata md = decode_metadata(encoded.data(), encoded.size(), "bench");
    benchmark::DoNotOptimize(md.tensors.size());
  }
}

void BM_LoadPlanning(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  DefaultSavePlanner save_planner;
  const Metadata md = metadata_of(save_planner.create_global_plan(local_plans(ranks)), ranks);
  size_t items = 0;
  for (auto _ : state) {
    state.PauseTiming();
    StateDict sd;
    for (const auto& [key, tm] : md.tensors) sd.set(key, Tensor::empty(tm.global_shape, tm.dtype, Device::kMeta));
    DefaultLoadPlanner planner;
    state.ResumeTiming();
    planner.set_up(sd, md, 0, true);
    LoadPlan plan = planner.create_local_plan();
    items = plan.items.size();
    benchmark::DoNotOptimize(plan.items.data());
  }
  state.counters["items"] = static_cast<double>(items);
}

void scale(benchmark::internal::Benchmark* b) {
  for (int n : {128, 256, 512, 1024}) b->Arg(n);
  b->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
}

BENCHMARK(BM_GlobalSavePlanning)->Apply(scale);
BENCHMARK(BM_Validation)->Apply(scale);
BENCHMARK(BM_MetadataSerialisation)->Apply(scale);
BENCHMARK(BM_MetadataParsing)->Apply(scale);
BENCHMARK(BM_LoadPlanning)->Apply(scale);

}  // namespace

BENCHMARK_MAIN();
