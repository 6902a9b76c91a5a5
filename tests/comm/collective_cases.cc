#include "comm/collective_cases.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/tensor.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

// ---- independent encodings of expected values ----

// Exact float16 bits of an integer |v| < 2048 (written from the IEEE layout:
// 1 sign, 5 exponent bits biased by 15, 10 mantissa bits).
uint16_t exact_half(int64_t v) {
  if (v == 0) return 0;
  const uint16_t sign = v < 0 ? 0x8000 : 0;
  uint64_t a = static_cast<uint64_t>(v < 0 ? -v : v);
  int e = 63 - std::countl_zero(a);
  const uint16_t mantissa = static_cast<uint16_t>((a << (10 - e)) & 0x3FF);
  return static_cast<uint16_t>(sign | ((e + 15) << 10) | mantissa);
}

// Exact bfloat16 bits of an integer |v| <= 256: the top half of float32.
uint16_t exact_bf16(int64_t v) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(static_cast<float>(v)) >> 16); }

// Encodes integral values (exactly representable in `dtype`) as raw bytes.
std::vector<std::byte> encode(DType dtype, const std::vector<int64_t>& values) {
  std::vector<std::byte> out;
  auto put = [&out](auto x) {
    const auto* p = reinterpret_cast<const std::byte*>(&x);
    out.insert(out.end(), p, p + sizeof(x));
  };
  for (int64_t v : values) {
    switch (dtype) {
      case DType::kFloat32: put(static_cast<float>(v)); break;
      case DType::kFloat64: put(static_cast<double>(v)); break;
      case DType::kFloat16: put(exact_half(v)); break;
      case DType::kBFloat16: put(exact_bf16(v)); break;
      case DType::kInt8: put(static_cast<int8_t>(v)); break;
      case DType::kInt16: put(static_cast<int16_t>(v)); break;
      case DType::kInt32: put(static_cast<int32_t>(v)); break;
      case DType::kInt64: put(static_cast<int64_t>(v)); break;
      case DType::kUInt8: put(static_cast<uint8_t>(v)); break;
      default: ADD_FAILURE() << "encode: unexpected dtype"; break;
    }
  }
  return out;
}

std::string hex(const std::vector<std::byte>& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (std::byte b : bytes) {
    s += kDigits[static_cast<unsigned>(b) >> 4];
    s += kDigits[static_cast<unsigned>(b) & 15];
    s += ' ';
  }
  return s;
}

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "?";
}

// A byte pattern that depends on (tag, index), never on the code under test.
char pattern(int tag, size_t i) { return static_cast<char>((tag * 37 + static_cast<int>(i) * 11 + 5) & 0xFF); }

Blob make_blob(int tag, size_t size) {
  Blob b(size, '\0');
  for (size_t i = 0; i < size; ++i) b[i] = pattern(tag, i);
  return b;
}

// Stateless value stream for the rank-order test: every rank can compute
// every other rank's inputs.
uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
double unit(uint64_t seed, int rank, size_t i) {
  const uint64_t bits = splitmix(seed ^ splitmix(static_cast<uint64_t>(rank) * 1000003u + i));
  return static_cast<double>(bits >> 11) * 0x1.0p-53 * 2.0 - 1.0;  // [-1, 1)
}

}  // namespace

void check_barrier(const CommPtr& comm) {
  for (int i = 0; i < 5; ++i) comm->barrier();
  EXPECT_GE(comm->rank(), 0);
  EXPECT_LT(comm->rank(), comm->size());
}

void check_broadcast(const CommPtr& comm) {
  const int n = comm->size();
  for (int root = 0; root < n; ++root) {
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{37}, size_t{100000}}) {
      std::vector<char> buf(bytes, static_cast<char>(0xEE));
      if (comm->rank() == root) {
        for (size_t i = 0; i < bytes; ++i) buf[i] = pattern(root, i);
      }
      comm->broadcast(buf.data(), bytes, root);
      size_t wrong = 0;
      for (size_t i = 0; i < bytes; ++i) wrong += buf[i] != pattern(root, i);
      EXPECT_EQ(wrong, 0u) << "broadcast of " << bytes << " bytes from root " << root << " on rank " << comm->rank();
    }
  }
  // A root out of range is the caller's mistake, reported before any exchange.
  try {
    int x = 0;
    comm->broadcast(&x, sizeof(x), n);
    ADD_FAILURE() << "broadcast with root " << n << " did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("root"), std::string::npos) << e.what();
  }
}

void check_all_gather(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  // 5 bytes per rank: rank r sends (r * 31 + i).
  std::vector<uint8_t> send(5), recv(5 * static_cast<size_t>(n), 0xAA);
  for (size_t i = 0; i < 5; ++i) send[i] = static_cast<uint8_t>(me * 31 + static_cast<int>(i));
  comm->all_gather(send.data(), recv.data(), send.size());
  for (int r = 0; r < n; ++r) {
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(recv[static_cast<size_t>(r) * 5 + i], static_cast<uint8_t>(r * 31 + static_cast<int>(i)))
          << "block " << r << " byte " << i << " on rank " << me;
    }
  }
  // int64 values, in place (the send block is this rank's own slot of recv).
  std::vector<int64_t> all(static_cast<size_t>(n), -1);
  all[static_cast<size_t>(me)] = int64_t{1} << (40 + me);
  comm->all_gather(&all[static_cast<size_t>(me)], all.data(), sizeof(int64_t));
  for (int r = 0; r < n; ++r) EXPECT_EQ(all[static_cast<size_t>(r)], int64_t{1} << (40 + r)) << "rank " << me;
  // Zero bytes.
  comm->all_gather(nullptr, nullptr, 0);
}

void check_all_gather_v(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  // Rank r sends r * 3 + 1 bytes.
  std::vector<Blob> got = comm->all_gather_v(make_blob(me, static_cast<size_t>(me) * 3 + 1));
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(got[static_cast<size_t>(r)], make_blob(r, static_cast<size_t>(r) * 3 + 1)) << "from rank " << r;
  }
  // Empty blobs from odd ranks, larger ones from even ranks.
  const size_t mine = me % 2 == 1 ? 0 : 70000 + static_cast<size_t>(me);
  got = comm->all_gather_v(make_blob(me + 100, mine));
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    const size_t size = r % 2 == 1 ? 0 : 70000 + static_cast<size_t>(r);
    EXPECT_EQ(got[static_cast<size_t>(r)].size(), size);
    EXPECT_TRUE(got[static_cast<size_t>(r)] == make_blob(r + 100, size)) << "from rank " << r;
  }
}

void check_gather_v(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  for (int root = 0; root < n; ++root) {
    std::vector<Blob> got = comm->gather_v(make_blob(me * 7 + root, static_cast<size_t>(me) * 3 + 1), root);
    if (me != root) {
      EXPECT_TRUE(got.empty()) << "non-root rank " << me << " got " << got.size() << " blobs";
      continue;
    }
    ASSERT_EQ(got.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      EXPECT_EQ(got[static_cast<size_t>(r)], make_blob(r * 7 + root, static_cast<size_t>(r) * 3 + 1))
          << "root " << root << " from rank " << r;
    }
  }
}

void check_scatter_v(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  for (int root = 0; root < n; ++root) {
    std::vector<Blob> blobs;
    if (me == root) {
      // Rank r receives r * 3 + 1 bytes, except the last rank gets nothing.
      for (int r = 0; r < n; ++r) {
        blobs.push_back(r == n - 1 && n > 1 ? Blob() : make_blob(root * 13 + r, static_cast<size_t>(r) * 3 + 1));
      }
    }
    Blob got = comm->scatter_v(blobs, root);
    const Blob expected = me == n - 1 && n > 1 ? Blob() : make_blob(root * 13 + me, static_cast<size_t>(me) * 3 + 1);
    EXPECT_EQ(got, expected) << "root " << root << " to rank " << me;
  }
  // The root passing the wrong number of blobs is reported on every rank.
  try {
    comm->scatter_v(std::vector<Blob>(static_cast<size_t>(n) + 1), 0);
    ADD_FAILURE() << "scatter_v with " << n + 1 << " blobs did not throw on rank " << me;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find("blobs"), std::string::npos) << e.what();
  }
  comm->barrier();  // still usable
}

void check_all_to_all_v(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  // Rank s sends rank d a blob of (s * 3 + d + 1) % 5 bytes (zero included),
  // tagged with (s, d).
  auto size_of = [](int s, int d) { return static_cast<size_t>((s * 3 + d + 1) % 5) * 9; };
  std::vector<Blob> send;
  for (int d = 0; d < n; ++d) send.push_back(make_blob(me * 16 + d, size_of(me, d)));
  std::vector<Blob> got = comm->all_to_all_v(send);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int s = 0; s < n; ++s) {
    EXPECT_EQ(got[static_cast<size_t>(s)], make_blob(s * 16 + me, size_of(s, me))) << "from rank " << s << " to " << me;
  }
  // The overload that may take the blobs over, with even ranks handing
  // theirs over and odd ranks keeping them: the same blobs arrive.
  std::vector<Blob> again = send;
  std::vector<Blob> got_again = me % 2 == 0 ? comm->all_to_all_v(std::move(again))
                                            : comm->all_to_all_v(static_cast<const std::vector<Blob>&>(again));
  EXPECT_EQ(got_again, got) << "on rank " << me;
  if (me % 2 != 0) EXPECT_EQ(again, send) << "a kept send vector changed on rank " << me;
}

void check_all_reduce_dtypes(const CommPtr& comm) {
  const int64_t n = comm->size();
  const int64_t me = comm->rank();
  const int64_t tri = n * (n + 1) / 2;  // sum over r of (r + 1)
  constexpr int64_t kCount = 11;
  const DType kTypes[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kInt8,
                          DType::kInt16,   DType::kInt32,   DType::kInt64,   DType::kUInt8};
  for (DType dtype : kTypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
      std::vector<int64_t> mine(kCount), expected(kCount);
      for (int64_t i = 0; i < kCount; ++i) {
        if (dtype == DType::kUInt8) {
          // Rank r holds (r + 1) * i.
          mine[i] = (me + 1) * i;
          expected[i] = op == ReduceOp::kSum ? i * tri : op == ReduceOp::kMax ? n * i : i;
        } else {
          // Rank r holds (r + 1) * (i - 5): negative, zero and positive.
          const int64_t d = i - 5;
          mine[i] = (me + 1) * d;
          const int64_t hi = d >= 0 ? n * d : d;
          const int64_t lo = d >= 0 ? d : n * d;
          expected[i] = op == ReduceOp::kSum ? d * tri : op == ReduceOp::kMax ? hi : lo;
        }
      }
      std::vector<std::byte> data = encode(dtype, mine);
      comm->all_reduce(data.data(), kCount, dtype, op);
      const std::vector<std::byte> want = encode(dtype, expected);
      EXPECT_EQ(hex(data), hex(want)) << dtype_name(dtype) << " " << op_name(op) << " on rank " << me << " of " << n;
    }
  }
}

void check_all_reduce_half_accumulation(const CommPtr& comm) {
  const int n = comm->size();
  if (n > 5) GTEST_SKIP() << "table covers world sizes 1..5";
  // Rank 0 holds 256 (bf16) / 2048 (f16), every other rank 1. Summed in
  // float32 and rounded once the result is round(base + n - 1); rounding
  // after every addition would stay at base (base + 1 ties to even = base).
  // bf16 near 256 and f16 near 2048 step by 2; ties go to the even mantissa.
  static const uint16_t kBf16[6] = {0, 0x4380, 0x4380, 0x4381, 0x4382, 0x4382};  // 256,256,258,260,260
  static const uint16_t kF16[6] = {0, 0x6800, 0x6800, 0x6801, 0x6802, 0x6802};   // 2048,2048,2050,2052,2052
  uint16_t bf = comm->rank() == 0 ? uint16_t{0x4380} : uint16_t{0x3F80};  // 256 : 1
  uint16_t hf = comm->rank() == 0 ? uint16_t{0x6800} : uint16_t{0x3C00};  // 2048 : 1
  comm->all_reduce(&bf, 1, DType::kBFloat16, ReduceOp::kSum);
  comm->all_reduce(&hf, 1, DType::kFloat16, ReduceOp::kSum);
  EXPECT_EQ(bf, kBf16[n]) << "bfloat16 sum over " << n << " ranks";
  EXPECT_EQ(hf, kF16[n]) << "float16 sum over " << n << " ranks";
}

void check_all_reduce_rank_order(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  const uint64_t seed = test_seed("all_reduce_rank_order");
  constexpr size_t kCount = 1001;
  std::vector<float> f(kCount);
  std::vector<double> d(kCount);
  for (size_t i = 0; i < kCount; ++i) {
    // Magnitudes spread over many binades so that the order of additions matters.
    f[i] = static_cast<float>(unit(seed, me, i) * std::ldexp(1.0, static_cast<int>((i * 7 + me * 5) % 40) - 20));
    d[i] = unit(seed + 1, me, i) * std::ldexp(1.0, static_cast<int>((i * 3 + me * 11) % 80) - 40);
  }
  comm->all_reduce(f.data(), kCount, DType::kFloat32, ReduceOp::kSum);
  comm->all_reduce(d.data(), kCount, DType::kFloat64, ReduceOp::kSum);
  size_t wrong_f = 0, wrong_d = 0;
  for (size_t i = 0; i < kCount; ++i) {
    float ef = 0;
    double ed = 0;
    for (int r = 0; r < n; ++r) {
      const float vf =
          static_cast<float>(unit(seed, r, i) * std::ldexp(1.0, static_cast<int>((i * 7 + r * 5) % 40) - 20));
      const double vd = unit(seed + 1, r, i) * std::ldexp(1.0, static_cast<int>((i * 3 + r * 11) % 80) - 40);
      ef = r == 0 ? vf : ef + vf;
      ed = r == 0 ? vd : ed + vd;
    }
    wrong_f += std::bit_cast<uint32_t>(f[i]) != std::bit_cast<uint32_t>(ef);
    wrong_d += std::bit_cast<uint64_t>(d[i]) != std::bit_cast<uint64_t>(ed);
  }
  EXPECT_EQ(wrong_f, 0u) << "float32 elements differing from the rank-order sum on rank " << me;
  EXPECT_EQ(wrong_d, 0u) << "float64 elements differing from the rank-order sum on rank " << me;
}

void check_all_reduce_nan(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (ReduceOp op : {ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kSum}) {
    // Element 0: NaN on the last rank; element 1: NaN on rank 0; element 2: none.
    float v[3] = {me == n - 1 ? nan : 1.0f, me == 0 ? nan : 2.0f, static_cast<float>(me)};
    comm->all_reduce(v, 3, DType::kFloat32, op);
    EXPECT_TRUE(std::isnan(v[0])) << op_name(op);
    EXPECT_TRUE(std::isnan(v[1])) << op_name(op);
    const float want = op == ReduceOp::kMax ? static_cast<float>(n - 1)
                       : op == ReduceOp::kMin ? 0.0f
                                              : static_cast<float>(n * (n - 1) / 2);
    EXPECT_EQ(v[2], want) << op_name(op);
  }
}

void check_all_reduce_large(const CommPtr& comm) {
  const int64_t n = comm->size();
  const int64_t me = comm->rank();
  const int64_t tri = n * (n + 1) / 2;
  for (size_t count : {size_t{1}, size_t{2}, size_t{7}, size_t{100003}}) {
    // Rank r holds (r + 1) * i: exact in float32 for these sizes.
    std::vector<float> f(count);
    std::vector<int32_t> k(count);
    for (size_t i = 0; i < count; ++i) {
      f[i] = static_cast<float>((me + 1) * static_cast<int64_t>(i));
      k[i] = static_cast<int32_t>((me + 1) * static_cast<int64_t>(i));
    }
    comm->all_reduce(f.data(), count, DType::kFloat32, ReduceOp::kSum);
    comm->all_reduce(k.data(), count, DType::kInt32, ReduceOp::kSum);
    size_t wrong_f = 0, wrong_k = 0;
    for (size_t i = 0; i < count; ++i) {
      wrong_f += f[i] != static_cast<float>(tri * static_cast<int64_t>(i));
      wrong_k += k[i] != static_cast<int32_t>(tri * static_cast<int64_t>(i));
    }
    EXPECT_EQ(wrong_f, 0u) << "count " << count << " rank " << me;
    EXPECT_EQ(wrong_k, 0u) << "count " << count << " rank " << me;
  }
  comm->all_reduce(nullptr, 0, DType::kFloat32, ReduceOp::kSum);
}

void check_all_reduce_unsupported(const CommPtr& comm) {
  for (DType dtype : {DType::kBool, DType::kFloat8E4M3FN, DType::kFloat8E5M2}) {
    uint8_t v[4] = {1, 0, 1, 0};
    try {
      comm->all_reduce(v, 4, dtype, ReduceOp::kSum);
      ADD_FAILURE() << "all_reduce of " << dtype_name(dtype) << " did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
      EXPECT_NE(e.message().find(std::string(dtype_name(dtype))), std::string::npos) << e.what();
    }
    try {
      uint8_t out[4];
      comm->reduce_scatter(v, out, 1, dtype, ReduceOp::kMax);
      ADD_FAILURE() << "reduce_scatter of " << dtype_name(dtype) << " did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    }
  }
  int32_t x = 1;
  comm->all_reduce(&x, 1, DType::kInt32, ReduceOp::kSum);
  EXPECT_EQ(x, comm->size());
}

void check_reduce_scatter(const CommPtr& comm) {
  const int64_t n = comm->size();
  const int64_t me = comm->rank();
  const int64_t tri = n * (n + 1) / 2;
  constexpr int64_t kCount = 3;
  // Rank r's block b element i is (r + 1) * (b * kCount + i); this rank
  // receives block `me`.
  for (DType dtype : {DType::kInt32, DType::kBFloat16, DType::kFloat64}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      std::vector<int64_t> send(static_cast<size_t>(n * kCount)), expected(kCount);
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t i = 0; i < kCount; ++i) send[static_cast<size_t>(b * kCount + i)] = (me + 1) * (b * kCount + i);
      }
      for (int64_t i = 0; i < kCount; ++i) {
        const int64_t base = me * kCount + i;
        expected[static_cast<size_t>(i)] = op == ReduceOp::kSum ? tri * base : n * base;
      }
      std::vector<std::byte> in = encode(dtype, send);
      std::vector<std::byte> out(static_cast<size_t>(kCount) * dtype_size(dtype), std::byte{0xCD});
      comm->reduce_scatter(in.data(), out.data(), kCount, dtype, op);
      EXPECT_EQ(hex(out), hex(encode(dtype, expected)))
          << dtype_name(dtype) << " " << op_name(op) << " on rank " << me << " of " << n;
    }
  }
}

void check_split(const CommPtr& comm) {
  const int n = comm->size();
  const int me = comm->rank();
  const int parity = me % 2;
  // Members of my color, in the order key = -rank puts them: descending rank.
  std::vector<int> members;
  for (int r = n - 1; r >= 0; --r) {
    if (r % 2 == parity) members.push_back(r);
  }
  CommPtr sub = comm->split(parity, -me);
  ASSERT_TRUE(sub != nullptr);
  EXPECT_EQ(sub->size(), (n - parity + 1) / 2);
  EXPECT_EQ(sub->rank(), static_cast<int>(members.size()) - 1 - me / 2);
  EXPECT_EQ(sub->backend(), comm->backend());

  std::vector<Blob> names = sub->all_gather_v(std::to_string(me));
  ASSERT_EQ(names.size(), members.size());
  for (size_t i = 0; i < members.size(); ++i) EXPECT_EQ(names[i], std::to_string(members[i]));

  comm->barrier();  // interleave parent and child collectives
  int64_t sum = me;
  sub->all_reduce(&sum, 1, DType::kInt64, ReduceOp::kSum);
  int64_t want = 0;
  for (int r : members) want += r;
  EXPECT_EQ(sum, want);

  // The two groups run different collectives at the same time.
  if (parity == 0) {
    int32_t v = sub->rank() == 0 ? 4242 : 0;
    sub->broadcast(&v, sizeof(v), 0);
    EXPECT_EQ(v, 4242);
  } else {
    std::vector<Blob> got = sub->gather_v(Blob(1, static_cast<char>('a' + me)), sub->size() - 1);
    if (sub->rank() == sub->size() - 1) {
      ASSERT_EQ(got.size(), members.size());
      for (size_t i = 0; i < members.size(); ++i) EXPECT_EQ(got[i], Blob(1, static_cast<char>('a' + members[i])));
    }
  }

  // Equal keys keep the parent's order; a nested split of the child.
  CommPtr nested = sub->split(0, 0);
  ASSERT_TRUE(nested != nullptr);
  EXPECT_EQ(nested->size(), sub->size());
  EXPECT_EQ(nested->rank(), sub->rank());
  int32_t count = 1;
  nested->all_reduce(&count, 1, DType::kInt32, ReduceOp::kSum);
  EXPECT_EQ(count, sub->size());

  // A negative color joins no group; the others form one without rank 0.
  CommPtr rest = comm->split(me == 0 ? -1 : 7, me);
  if (me == 0) {
    EXPECT_TRUE(rest == nullptr);
  } else {
    ASSERT_TRUE(rest != nullptr);
    EXPECT_EQ(rest->size(), n - 1);
    EXPECT_EQ(rest->rank(), me - 1);
    int32_t m = me;
    rest->all_reduce(&m, 1, DType::kInt32, ReduceOp::kMin);
    EXPECT_EQ(m, 1);
  }
  comm->barrier();
  // The parent still works after its children.
  int32_t total = 1;
  comm->all_reduce(&total, 1, DType::kInt32, ReduceOp::kSum);
  EXPECT_EQ(total, n);
}

void check_tensor_all_reduce(const CommPtr& comm) {
  const int64_t n = comm->size();
  const int64_t me = comm->rank();
  // A [3, 4] float32 tensor; rank r holds (r + 1) * i in row-major order.
  std::vector<float> values(12);
  for (size_t i = 0; i < 12; ++i) values[i] = static_cast<float>((me + 1) * static_cast<int64_t>(i));
  Tensor t = Tensor::from_blob(values.data(), {3, 4}, DType::kFloat32);
  comm->all_reduce(t, ReduceOp::kSum);
  for (size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(values[i], static_cast<float>(n * (n + 1) / 2 * static_cast<int64_t>(i))) << "element " << i;
  }
  Tensor m = Tensor::from_blob(values.data(), {3, 4}, DType::kFloat32);
  // Non-contiguous and meta tensors are rejected on every rank.
  Tensor transposed = m.transpose(0, 1);
  try {
    comm->all_reduce(transposed, ReduceOp::kSum);
    ADD_FAILURE() << "all_reduce of a non-contiguous tensor did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find("contiguous"), std::string::npos) << e.what();
  }
  Tensor meta = Tensor::empty({2}, DType::kFloat32, Device::kMeta);
  EXPECT_THROW(comm->all_reduce(meta, ReduceOp::kSum), Error);
  comm->barrier();
}

}  // namespace dcpp::testing
