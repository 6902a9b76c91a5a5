// Strided copy throughput (Tensor::copy_from) beside plain memcpy of the
// same number of bytes, measured in the same run. The ratio is what matters:
// a contiguous copy or a row window should run at memcpy speed, because
// every contiguous run is a single memcpy call.
#include <benchmark/benchmark.h>

#include <cstring>

#include "dcpp/tensor.h"

namespace {

using dcpp::DType;
using dcpp::Tensor;

constexpr int64_t kMiB = 1 << 20;

void touch(const Tensor& t) { std::memset(t.data_ptr(), 1, t.nbytes()); }

// memcpy of `bytes` between two fresh buffers: the machine's own limit.
void run_memcpy(benchmark::State& state, int64_t bytes) {
  Tensor a = Tensor::empty({bytes}, DType::kUInt8);
  Tensor b = Tensor::empty({bytes}, DType::kUInt8);
  touch(a);
  touch(b);
  for (auto _ : state) {
    std::memcpy(b.data_ptr(), a.data_ptr(), static_cast<size_t>(bytes));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

void run_copy(benchmark::State& state, const Tensor& src, Tensor& dst) {
  touch(dst);
  for (auto _ : state) {
    dst.copy_from(src);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(dst.nbytes()));
}

// Fully contiguous 64 MiB float32: one memcpy.
void BM_Contiguous64MiB_Memcpy(benchmark::State& state) { run_memcpy(state, 64 * kMiB); }
void BM_Contiguous64MiB_CopyFrom(benchmark::State& state) {
  Tensor src = Tensor::empty({16 * kMiB});
  touch(src);
  Tensor dst = Tensor::empty({16 * kMiB});
  run_copy(state, src, dst);
}

// A [4096, 2048] column window out of a row-major [4096, 8192] float32
// matrix (the resharding case): one 8 KiB memcpy per row, 32 MiB in all.
void BM_ColumnWindow4096x2048of8192_Memcpy(benchmark::State& state) { run_memcpy(state, 4096 * 2048 * 4); }
void BM_ColumnWindow4096x2048of8192_CopyFrom(benchmark::State& state) {
  Tensor wide = Tensor::empty({4096, 8192});
  touch(wide);
  Tensor src = wide.narrow(1, 3072, 2048);
  Tensor dst = Tensor::empty({4096, 2048});
  run_copy(state, src, dst);
}

// The same window written into a wider destination (both sides strided).
void BM_ColumnWindowIntoWindow_CopyFrom(benchmark::State& state) {
  Tensor wide = Tensor::empty({4096, 8192});
  touch(wide);
  Tensor src = wide.narrow(1, 3072, 2048);
  Tensor target = Tensor::empty({4096, 4096});
  Tensor dst = target.narrow(1, 1024, 2048);
  touch(target);
  for (auto _ : state) {
    dst.copy_from(src);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(dst.nbytes()));
}

// A transposed [4096, 4096] float32 (64 MiB) made contiguous: no runs at
// all, copied in tiles.
void BM_Transpose4096_Memcpy(benchmark::State& state) { run_memcpy(state, 4096 * 4096 * 4); }
void BM_Transpose4096_CopyFrom(benchmark::State& state) {
  Tensor a = Tensor::empty({4096, 4096});
  touch(a);
  Tensor src = a.transpose(0, 1);
  Tensor dst = Tensor::empty({4096, 4096});
  run_copy(state, src, dst);
}

// A dtype-converting copy (float32 -> bfloat16, 16M elements), element-wise;
// bytes counted on the destination side.
void BM_ConvertFloat32ToBFloat16_16M(benchmark::State& state) {
  Tensor src = Tensor::empty({16 * kMiB});
  std::memset(src.data_ptr(), 0x3f, src.nbytes());
  Tensor dst = Tensor::empty({16 * kMiB}, DType::kBFloat16);
  run_copy(state, src, dst);
}

BENCHMARK(BM_Contiguous64MiB_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Contiguous64MiB_CopyFrom)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ColumnWindow4096x2048of8192_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ColumnWindow4096x2048of8192_CopyFrom)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ColumnWindowIntoWindow_CopyFrom)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Transpose4096_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Transpose4096_CopyFrom)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvertFloat32ToBFloat16_16M)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
