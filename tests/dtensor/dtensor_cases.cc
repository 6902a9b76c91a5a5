#include "dtensor/dtensor_cases.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dcpp/dtensor.h"
#include "dcpp/error.h"

namespace dcpp::testing {

namespace {

constexpr DType kAllDTypes[] = {DType::kFloat32, DType::kFloat64,  DType::kFloat16, DType::kBFloat16,
                                DType::kInt8,    DType::kInt16,    DType::kInt32,   DType::kInt64,
                                DType::kUInt8,   DType::kBool,     DType::kFloat8E4M3FN, DType::kFloat8E5M2};

std::string pl_string(const Placements& p) {
  std::string s = "[";
  for (const auto& x : p) s += (s.size() > 1 ? ", " : "") + placement_to_string(x);
  return s + "]";
}

// Random bytes: every bit pattern (NaN payloads, -0.0) must survive data movement.
Tensor random_bits(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  std::vector<uint8_t> bytes(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype) + 1);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  if (dtype == DType::kBool)
    for (auto& b : bytes) b &= 1;
  return Tensor::from_blob(bytes.data(), shape, dtype).clone();
}

// Small non-negative integers, exact in every dtype, for cases whose Partial
// sums do arithmetic (which would canonicalise NaNs and -0.0).
Tensor random_values(const Shape& shape, DType dtype, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, DType::kFloat64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<double>(rng() % 8);
  return t.to(dtype);
}

std::vector<Placement> all_placements(int64_t ndim, bool with_partial) {
  std::vector<Placement> out;
  for (int64_t d = 0; d < ndim; ++d) out.push_back(Shard{d});
  if (ndim > 0) out.push_back(Shard{-1});
  out.push_back(Replicate{});
  if (with_partial) out.push_back(Partial{});
  return out;
}

std::vector<Placements> all_placement_lists(int64_t ndim, int mesh_ndim, bool with_partial) {
  std::vector<Placements> out{{}};
  for (int k = 0; k < mesh_ndim; ++k) {
    std::vector<Placements> next;
    for (const auto& prefix : out)
      for (const auto& p : all_placements(ndim, with_partial)) {
        Placements q = prefix;
        q.push_back(p);
        next.push_back(q);
      }
    out = std::move(next);
  }
  return out;
}

bool has_partial(const Placements& p) {
  for (const auto& x : p)
    if (std::holds_alternative<Partial>(x)) return true;
  return false;
}

// The piece the chunk math assigns to this rank, cut from the full tensor.
Tensor expected_piece(const Tensor& full, const DeviceMesh& mesh, const Placements& pl) {
  LocalChunk c = compute_local_shape_and_global_offset(full.shape(), mesh.shape(), mesh.coordinate(), pl);
  Tensor v = full;
  for (size_t d = 0; d < c.local_shape.size(); ++d)
    v = v.narrow(static_cast<int64_t>(d), c.global_offset[d], c.local_shape[d]);
  return v;
}

std::vector<Shape> mesh_shapes(int n) {
  std::vector<Shape> out{{n}};
  if (n > 1) {
    out.push_back({1, n});
    out.push_back({n, 1});
  }
  if (n == 4) out.push_back({2, 2});
  if (n == 6) {
    out.push_back({2, 3});
    out.push_back({3, 2});
  }
  return out;
}

void check_roundtrip(const DeviceMesh& mesh, const Tensor& original, const Placements& src, const Placements& dst,
                     int src_rank) {
  SCOPED_TRACE("mesh " + shape_to_string(mesh.shape()) + " shape " + shape_to_string(original.shape()) + " " +
               std::string(dtype_name(original.dtype())) + " " + pl_string(src) + " -> " + pl_string(dst) +
               " src rank " + std::to_string(src_rank));
  // Only the source rank's tensor is significant; the others pass garbage.
  Tensor input = mesh.rank() == src_rank ? original : Tensor::zeros({1}, DType::kInt8);
  DTensor d = distribute_tensor(input, mesh, src, src_rank);
  EXPECT_EQ(d.shape(), original.shape());
  EXPECT_EQ(d.dtype(), original.dtype());
  if (!has_partial(src)) EXPECT_TRUE(equal(d.to_local(), expected_piece(original, mesh, src)));
  DTensor r = d.redistribute(dst);
  EXPECT_EQ(r.shape(), original.shape());
  EXPECT_EQ(r.to_local().shape(),
            compute_local_shape_and_global_offset(original.shape(), mesh.shape(), mesh.coordinate(), dst).local_shape);
  EXPECT_EQ(r.global_offset(),
            compute_local_shape_and_global_offset(original.shape(), mesh.shape(), mesh.coordinate(), dst).global_offset);
  if (!has_partial(dst)) EXPECT_TRUE(equal(r.to_local(), expected_piece(original, mesh, dst)));
  Tensor full = r.full_tensor();
  EXPECT_TRUE(equal(full, original)) << "max diff " << max_abs_diff(full, original);
  // The source DTensor is unchanged by redistribute (no aliasing of reduced data).
  EXPECT_TRUE(equal(d.full_tensor(), original));
}

}  // namespace

void device_mesh_case(const CommPtr& world) {
  const int n = world->size(), r = world->rank();
  DeviceMesh m1 = init_device_mesh(world, "cpu", {n});
  EXPECT_EQ(m1.ndim(), 1);
  EXPECT_EQ(m1.size(), n);
  EXPECT_EQ(m1.size(0), n);
  EXPECT_EQ(m1.coordinate(), (std::vector<int64_t>{r}));
  EXPECT_EQ(m1.rank(), r);
  EXPECT_EQ(m1.dim_comm(0)->size(), n);
  EXPECT_EQ(m1.dim_comm(0)->rank(), r);
  EXPECT_EQ(m1.device_type(), Device::kCpu);
  DeviceMesh copy = m1;
  EXPECT_TRUE(copy == m1);
  DeviceMesh other = init_device_mesh(world, "cpu", {n}, {"tp"});
  EXPECT_TRUE(other != m1);  // dim names differ
  EXPECT_EQ(other.dim_index("tp"), 0);
  EXPECT_THROW(other.dim_index("dp"), Error);
  EXPECT_THROW(init_device_mesh(world, "cpu", {n + 1}), Error);
  EXPECT_EQ(init_device_mesh(world, "cuda", {n}).device_type(),
            cuda_device_count() > 0 ? Device::kCuda : Device::kCpu);
  EXPECT_EQ(init_device_mesh(world, "meta", {n}).device_type(), Device::kMeta);

  for (const Shape& ms : mesh_shapes(n)) {
    if (ms.size() != 2) continue;
    SCOPED_TRACE("mesh " + shape_to_string(ms));
    DeviceMesh m2 = init_device_mesh(world, "cpu", ms, {"dp", "tp"});
    const int64_t rows = ms[0], cols = ms[1];
    // Row-major: rank = row * cols + col.
    EXPECT_EQ(m2.coordinate(), (std::vector<int64_t>{r / cols, r % cols}));
    EXPECT_EQ(m2.dim_index("tp"), 1);
    EXPECT_EQ(m2.dim_comm(0)->size(), rows);
    EXPECT_EQ(m2.dim_comm(1)->size(), cols);
    EXPECT_EQ(m2.dim_comm(0)->rank(), r / cols);
    EXPECT_EQ(m2.dim_comm(1)->rank(), r % cols);
    // Each sub-communicator joins exactly the ranks of one grid line.
    int32_t mine = r, got_row[16], got_col[16];
    m2.dim_comm(1)->all_gather(&mine, got_row, sizeof(int32_t));
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(got_row[c], (r / cols) * cols + c);
    m2.dim_comm(0)->all_gather(&mine, got_col, sizeof(int32_t));
    for (int64_t k = 0; k < rows; ++k) EXPECT_EQ(got_col[k], k * cols + r % cols);
    EXPECT_TRUE(m2 == m2);
    EXPECT_TRUE(m2 != m1);
  }
}

void roundtrip_case(const CommPtr& world, uint64_t seed) {
  const int n = world->size();
  std::mt19937_64 rng(seed);  // same stream on every rank
  for (const Shape& ms : mesh_shapes(n)) {
    DeviceMesh mesh = init_device_mesh(world, "cpu", ms);
    const int mesh_ndim = static_cast<int>(ms.size());
    for (int trial = 0; trial < (mesh_ndim == 1 ? 6 : 3); ++trial) {
      // Dims from 0 to 7: some smaller than the number of ranks, some empty.
      const int64_t ndim = 1 + static_cast<int64_t>(rng() % 3);
      Shape shape(ndim);
      for (auto& s : shape) s = static_cast<int64_t>(rng() % (trial == 0 ? 3 : 8));
      const DType dtype = kAllDTypes[rng() % std::size(kAllDTypes)];
      const int src_rank = static_cast<int>(rng() % n);
      Tensor bits = random_bits(shape, dtype, rng);
      Tensor values = random_values(shape, dtype, rng);
      const bool partial_ok = dtype != DType::kBool;
      auto lists = all_placement_lists(ndim, mesh_ndim, partial_ok);
      for (const auto& src : lists)
        for (const auto& dst : lists) {
          // Exhaustive on 1-d meshes; a random third of the pairs on 2-d ones.
          if (mesh_ndim == 2 && rng() % 3 != 0) continue;
          const bool arithmetic = has_partial(src) || has_partial(dst);
          check_roundtrip(mesh, arithmetic ? values : bits, src, dst, src_rank);
        }
    }
  }
}

void from_local_case(const CommPtr& world, uint64_t seed) {
  const int n = world->size(), r = world->rank();
  DeviceMesh mesh = init_device_mesh(world, "cpu", {n});
  // 5 rows over n ranks, built from local pieces only: ceil-chunk sizes.
  const int64_t rows = 5;
  ChunkExtent e = shard_extent(rows, n, r);
  Tensor local = Tensor::full({e.length, 3}, static_cast<double>(r), DType::kInt32);
  DTensor d = DTensor::from_local(local, mesh, {Shard{0}});
  EXPECT_EQ(d.shape(), (Shape{rows, 3}));
  EXPECT_EQ(d.global_offset(), (Shape{e.offset, 0}));
  Tensor full = d.full_tensor();
  for (int64_t i = 0; i < rows; ++i) {
    int64_t owner = 0;
    for (int q = 0; q < n; ++q) {
      ChunkExtent eq = shard_extent(rows, n, q);
      if (i >= eq.offset && i < eq.offset + eq.length) owner = q;
    }
    EXPECT_EQ(full.at({i, 2}), static_cast<double>(owner));
  }
  // Partial: every rank holds a summand.
  DTensor p = DTensor::from_local(Tensor::full({2}, r + 1.0, DType::kFloat64), mesh, {Partial{}});
  Tensor sum = p.full_tensor();
  EXPECT_EQ(sum.at({1}), n * (n + 1) / 2.0);
  // Shard(-1) normalises; a wrong local shape is rejected with the shapes named.
  DTensor s = DTensor::from_local(Tensor::zeros({2, e.length}), mesh, {Shard{-1}}, Shape{2, rows});
  EXPECT_EQ(std::get<Shard>(s.placements()[0]).dim, 1);
  if (n > 1) EXPECT_THROW(DTensor(Tensor::zeros({rows, 2}), mesh, {Shard{0}}, Shape{rows, 2}), Error);
  EXPECT_THROW(DTensor(Tensor::zeros({rows}), mesh, {Shard{1}}, Shape{rows}), Error);
  EXPECT_THROW(DTensor(Tensor::zeros({rows}), mesh, {Shard{0}, Replicate{}}, Shape{rows}), Error);
  // A meta DTensor keeps shapes and never touches data.
  DeviceMesh meta_mesh = init_device_mesh(world, "meta", {n});
  DTensor m = distribute_tensor(Tensor::empty({rows, 4}, DType::kFloat32, Device::kMeta), meta_mesh, {Shard{0}});
  EXPECT_TRUE(m.is_meta());
  EXPECT_EQ(m.to_local().shape(), (Shape{e.length, 4}));
  (void)seed;
}

}  // namespace dcpp::testing
