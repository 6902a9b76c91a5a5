#include "conformance/conformance_cases.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <utility>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/io.h"
#include "dcpp/testing/fault_injecting_file_system.h"

namespace dcpp::testing {

// ===================== backends =====================

std::vector<DType> all_dtypes() {
  std::vector<DType> out;
  for (int i = 0; i < kNumDTypes; ++i) out.push_back(static_cast<DType>(i));
  return out;
}

std::vector<ValueKind> all_value_kinds() {
  return {ValueKind::kInt64, ValueKind::kDouble, ValueKind::kBool, ValueKind::kString, ValueKind::kBytes};
}

void PrintTo(const StorageBackend& backend, std::ostream* os) { *os << backend.name; }

namespace {

std::vector<StorageBackend>& backend_registry() {
  static std::vector<StorageBackend> registry;
  return registry;
}

}  // namespace

bool register_backend(StorageBackend backend) {
  backend_registry().push_back(std::move(backend));
  return true;
}

std::vector<StorageBackend> registered_backends() {
  std::vector<StorageBackend> out = backend_registry();
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::vector<StoredItem> locate_items(const StorageBackend& backend, const std::string& path) {
  CheckpointReader reader(backend.make_reader(path, RankContext{}));
  std::vector<StoredItem> items;
  for (const auto& [key, tensor] : reader.metadata().tensors) {
    for (const ChunkMeta& chunk : tensor.chunks) {
      const StorageLocation& loc = chunk.location;
      StoredItem item{key, chunk.offsets, loc.file, path + "/" + loc.file, loc.byte_offset, loc.byte_length,
                      loc.byte_offset, loc.byte_length};
      if (backend.find_tensor_bytes && item.item_length > 0) backend.find_tensor_bytes(item);
      items.push_back(std::move(item));
    }
  }
  std::sort(items.begin(), items.end(), [](const StoredItem& a, const StoredItem& b) {
    return std::tie(a.file, a.item_offset) < std::tie(b.file, b.item_offset);
  });
  return items;
}

namespace {

// ===================== tensors and their pieces =====================

// Every byte drawn from `seed` (bool: 0 or 1), so floats take every bit
// pattern, NaNs with payloads and subnormals included.
Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  std::mt19937_64 rng(seed);
  auto* bytes = static_cast<unsigned char*>(t.nbytes() ? t.data_ptr() : nullptr);
  for (size_t i = 0; i < t.nbytes(); ++i) {
    bytes[i] = static_cast<unsigned char>(dtype == DType::kBool ? rng() & 1 : rng() & 0xff);
  }
  return t;
}

// A copy of `t` with every element different from `t`'s (each byte
// complemented; bool negated): what a load target holds before the load.
Tensor complement_of(const Tensor& t) {
  Tensor c = t.clone();
  auto* bytes = static_cast<unsigned char*>(c.nbytes() ? c.data_ptr() : nullptr);
  for (size_t i = 0; i < c.nbytes(); ++i) bytes[i] ^= c.dtype() == DType::kBool ? 0x01 : 0xff;
  return c;
}

// nullopt: a plain tensor (every rank holds all of it).
using Layout = std::optional<Placements>;

std::string describe(const Layout& layout) {
  if (!layout) return "plain";
  std::string s = "[";
  for (size_t i = 0; i < layout->size(); ++i) s += (i ? ", " : "") + placement_to_string((*layout)[i]);
  return s + "]";
}

struct Piece {
  Shape offsets;
  Shape sizes;
};

Piece piece_of(const Shape& global, const DeviceMesh& mesh, const Layout& layout) {
  if (!layout) return {Shape(global.size(), 0), global};
  LocalChunk lc = compute_local_shape_and_global_offset(global, mesh.shape(), mesh.coordinate(), *layout);
  return {lc.global_offset, lc.local_shape};
}

Tensor box_of(const Tensor& full, const Piece& piece) {
  Tensor t = full;
  for (size_t d = 0; d < piece.sizes.size(); ++d) t = t.narrow(static_cast<int64_t>(d), piece.offsets[d], piece.sizes[d]);
  return t.contiguous();
}

// One tensor of a case: its full value and how it is laid out when saved
// and when loaded.
struct Entry {
  std::string key;
  Tensor full;
  Layout saved;
  Layout loaded;
};

enum class Side { kSave, kLoad };

// This rank's state dict for `entries`: its pieces of the full tensors
// (save side), or their complements laid out for loading (load side).
StateDict state_of(const std::vector<Entry>& entries, const DeviceMesh& mesh, Side side) {
  StateDict sd;
  for (const Entry& e : entries) {
    const Layout& layout = side == Side::kSave ? e.saved : e.loaded;
    Tensor piece = box_of(e.full, piece_of(e.full.shape(), mesh, layout));
    piece = side == Side::kSave ? piece.clone() : complement_of(piece);
    if (layout) {
      sd.set(e.key, DTensor(piece, mesh, *layout, e.full.shape()));
    } else {
      sd.set(e.key, piece);
    }
  }
  return sd;
}

Tensor local_of(const StateValue& v) { return v.is_dtensor() ? v.as<DTensor>().to_local() : v.as<Tensor>(); }

std::string rank_of(const CommPtr& comm) {
  return "rank " + std::to_string(comm->rank()) + " of " + std::to_string(comm->size());
}

// Each loaded piece equals the same box of the full tensor, bit for bit.
void expect_loaded(const StateDict& sd, const std::vector<Entry>& entries, const DeviceMesh& mesh,
                   const CommPtr& comm) {
  for (const Entry& e : entries) {
    Tensor want = box_of(e.full, piece_of(e.full.shape(), mesh, e.loaded));
    const Tensor got = local_of(sd.at(e.key));
    EXPECT_TRUE(equal(got, want)) << "'" << e.key << "' saved " << describe(e.saved) << ", loaded "
                                  << describe(e.loaded) << " on " << rank_of(comm) << ": got "
                                  << got.to_string(8) << ", want " << want.to_string(8);
  }
}

// ===================== save and load through a backend =====================

std::string checkpoint_path(const std::string& dir) { return dir + "/ckpt"; }

RankContext context_of(const CommPtr& comm) { return RankContext{comm->rank(), comm->size()}; }

void save_through(const StorageBackend& backend, const StateDict& sd, const CommPtr& comm, const std::string& dir) {
  auto writer = backend.make_writer(checkpoint_path(dir), context_of(comm), nullptr);
  save(sd, *writer, SaveOptions{.comm = comm});
}

void load_through(const StorageBackend& backend, StateDict& sd, const CommPtr& comm, const std::string& dir,
                  bool allow_partial_load = false) {
  auto reader = backend.make_reader(checkpoint_path(dir), context_of(comm));
  load(sd, *reader, LoadOptions{.comm = comm, .allow_partial_load = allow_partial_load});
}

// Rank 0 reads every entry whole through CheckpointReader (no communicator,
// no planner of the load path): dtype, global shape and bytes.
void expect_whole_tensors(const StorageBackend& backend, const std::vector<Entry>& entries, const CommPtr& comm,
                          const std::string& dir) {
  comm->barrier();
  if (comm->rank() != 0) return;
  CheckpointReader reader(backend.make_reader(checkpoint_path(dir), RankContext{}));
  for (const Entry& e : entries) {
    CheckpointReader::TensorInfo info = reader.tensor_info(e.key);
    EXPECT_EQ(info.dtype, e.full.dtype()) << "'" << e.key << "'";
    EXPECT_EQ(info.shape, e.full.shape()) << "'" << e.key << "' global shape";
    EXPECT_TRUE(equal(reader.read(e.key), e.full)) << "'" << e.key << "' read whole";
  }
}

// Saves `entries` on `comm`, loads them back into complements, compares.
void round_trip(const StorageBackend& backend, const std::vector<Entry>& entries, const CommPtr& comm,
                const std::string& dir) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  save_through(backend, state_of(entries, mesh, Side::kSave), comm, dir);
  StateDict target = state_of(entries, mesh, Side::kLoad);
  load_through(backend, target, comm, dir);
  expect_loaded(target, entries, mesh, comm);
  expect_whole_tensors(backend, entries, comm, dir);
}

// A per-key seed, so that no two tensors of a case share their bytes.
uint64_t key_seed(uint64_t seed, const std::string& key) { return seed ^ std::hash<std::string>{}(key); }

Entry entry(const std::string& key, const Shape& shape, DType dtype, uint64_t seed, Layout saved,
            std::optional<Layout> loaded = std::nullopt) {
  Tensor full = random_tensor(shape, dtype, key_seed(seed, key));
  return Entry{key, full, saved, loaded ? *loaded : saved};
}

}  // namespace

// ===================== cases =====================

void case_dtype_round_trip(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, DType dtype,
                           uint64_t seed) {
  round_trip(backend,
             {entry("sharded", {7, 5}, dtype, seed, Placements{Shard{0}}),
              entry("sharded_cols", {3, 11}, dtype, seed, Placements{Shard{1}}),
              entry("replicated", {6}, dtype, seed, Placements{Replicate{}}),
              entry("plain", {2, 3, 2}, dtype, seed, std::nullopt)},
             comm, dir);
}

void case_empty_and_scalar(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed) {
  round_trip(backend,
             {entry("empty_1d", {0}, DType::kFloat32, seed, std::nullopt),
              entry("empty_rows", {0, 4}, DType::kFloat32, seed, Placements{Shard{0}}),
              entry("empty_cols", {3, 0}, DType::kInt64, seed, Placements{Shard{0}}),
              entry("empty_middle", {2, 0, 3}, DType::kBFloat16, seed, Placements{Replicate{}}),
              entry("scalar_f32", {}, DType::kFloat32, seed, std::nullopt),
              entry("scalar_f64", {}, DType::kFloat64, seed, Placements{Replicate{}}),
              entry("scalar_i64", {}, DType::kInt64, seed, std::nullopt),
              entry("scalar_bool", {}, DType::kBool, seed, std::nullopt)},
             comm, dir);
}

void case_uneven_shards(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed) {
  const int n = comm->size();
  ASSERT_GE(n, 1);
  ASSERT_LE(n, 5) << "the literal table below covers world sizes 1 to 5";
  // Each rank's extent along the sharded dim (docs/design.md §2: chunk ceil(S/n), trailing ranks may own nothing).
  struct Uneven {
    const char* key;
    Shape shape;
    int64_t dim;
    std::vector<std::vector<int64_t>> extents;  // by world size 1..5
  };
  const std::vector<Uneven> table = {
      {"rows10", {10, 3}, 0, {{10}, {5, 5}, {4, 4, 2}, {3, 3, 3, 1}, {2, 2, 2, 2, 2}}},
      {"rows5", {5, 2}, 0, {{5}, {3, 2}, {2, 2, 1}, {2, 2, 1, 0}, {1, 1, 1, 1, 1}}},
      {"cols3", {4, 3}, 1, {{3}, {2, 1}, {1, 1, 1}, {1, 1, 1, 0}, {1, 1, 1, 0, 0}}},
      {"rows2", {2}, 0, {{2}, {1, 1}, {1, 1, 0}, {1, 1, 0, 0}, {1, 1, 0, 0, 0}}},
  };
  std::vector<Entry> entries;
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {n});
  for (const Uneven& u : table) {
    entries.push_back(entry(u.key, u.shape, DType::kFloat32, seed, Placements{Shard{u.dim}}));
    const Piece piece = piece_of(u.shape, mesh, entries.back().saved);
    EXPECT_EQ(piece.sizes[u.dim], u.extents[n - 1][comm->rank()]) << u.key << " on " << rank_of(comm);
  }
  round_trip(backend, entries, comm, dir);
}

namespace {

// ---- values ----

struct ValueCase {
  std::string name;
  StateValue value;
};

Bytes bytes_of(const std::string& s) {
  Bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::vector<ValueCase> value_cases(ValueKind kind, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint64_t bits = rng();
  switch (kind) {
    case ValueKind::kInt64:
      return {{"random", static_cast<int64_t>(bits)},
              {"zero", int64_t{0}},
              {"max", std::numeric_limits<int64_t>::max()},
              {"min", std::numeric_limits<int64_t>::min()},
              {"negative", int64_t{-1234567890123}}};
    case ValueKind::kDouble: {
      double random, nan;  // any bit pattern: NaNs with payloads, subnormals, infinities
      std::memcpy(&random, &bits, sizeof random);
      const uint64_t nan_bits = 0xfff4000000000123ull;  // negative, signalling, with a payload
      std::memcpy(&nan, &nan_bits, sizeof nan);
      return {{"random", random},
              {"nan_with_payload", nan},
              {"infinity", -std::numeric_limits<double>::infinity()},
              {"third", 1.0 / 3.0},
              {"negative_zero", -0.0},
              {"smallest_subnormal", std::numeric_limits<double>::denorm_min()},
              {"max", DBL_MAX},
              {"lr", 3.5e-4}};
    }
    case ValueKind::kBool: return {{"yes", true}, {"no", false}, {"random", (bits & 1) != 0}};
    case ValueKind::kString: {
      std::string random(1 + bits % 64, ' ');
      for (char& c : random) c = static_cast<char>('a' + rng() % 26);
      return {{"random", random},
              {"empty", std::string()},
              {"ascii", std::string("run-1")},
              {"utf8", std::string("\xc3\xbc \xe2\x9c\x93 \xf0\x9f\x98\x80")},
              {"quotes_and_nul", std::string("a\"b\\c\n\0d", 9)},
              {"long", std::string(20000, 'x')}};
    }
    case ValueKind::kBytes: {
      Bytes every(256), random(1000);
      for (int i = 0; i < 256; ++i) every[i] = static_cast<std::byte>(i);
      for (std::byte& b : random) b = static_cast<std::byte>(rng() & 0xff);
      return {{"random", random},
              {"empty", Bytes{}},
              {"every_byte", every},
              {"pickle_like", bytes_of(std::string("\x80\x02}q\x00.", 6))}};
    }
  }
  return {};
}

// Something of the same kind that differs from `v`.
StateValue other_than(const StateValue& v) {
  if (v.holds<int64_t>()) return int64_t{v.as<int64_t>() == 7 ? 8 : 7};
  if (v.holds<double>()) return v.as<double>() == 7.0 ? 8.0 : 7.0;
  if (v.holds<bool>()) return !v.as<bool>();
  if (v.holds<std::string>()) return std::string(v.as<std::string>() == "sentinel" ? "other" : "sentinel");
  Bytes b = v.as<Bytes>();
  b.push_back(std::byte{7});
  return b;
}

// Same kind and the same bits (a double compares by its bits: -0.0 is not 0.0).
bool same_value(const StateValue& a, const StateValue& b) {
  if (a.variant().index() != b.variant().index()) return false;
  if (a.holds<double>()) {
    const double x = a.as<double>(), y = b.as<double>();
    return std::memcmp(&x, &y, sizeof x) == 0;
  }
  if (a.holds<int64_t>()) return a.as<int64_t>() == b.as<int64_t>();
  if (a.holds<bool>()) return a.as<bool>() == b.as<bool>();
  if (a.holds<std::string>()) return a.as<std::string>() == b.as<std::string>();
  return a.as<Bytes>() == b.as<Bytes>();
}

}  // namespace

void case_value_round_trip(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, ValueKind kind,
                           uint64_t seed) {
  const std::vector<ValueCase> cases = value_cases(kind, seed);
  StateDict saved, target;
  for (const ValueCase& c : cases) {
    saved.set(c.name, c.value);
    target.set(c.name, other_than(c.value));
  }
  StateDict saved_root{{"values", saved}};
  StateDict target_root{{"values", target}};
  save_through(backend, saved_root, comm, dir);
  load_through(backend, target_root, comm, dir);
  const StateDict& loaded = target_root.at("values").dict();
  for (const ValueCase& c : cases) {
    const StateValue& got = loaded.at(c.name);
    EXPECT_TRUE(same_value(got, c.value)) << "'values." << c.name << "' on " << rank_of(comm) << ": loaded a "
                                          << got.type_name();
  }
  comm->barrier();
  if (comm->rank() == 0) {
    CheckpointReader reader(backend.make_reader(checkpoint_path(dir), RankContext{}));
    for (const ValueCase& c : cases) {
      EXPECT_TRUE(same_value(reader.value("values." + c.name), c.value)) << "'values." << c.name << "' read alone";
    }
  }
}

namespace {

std::vector<Entry> reshard_entries(uint64_t seed) {
  return {entry("s0_to_s1", {11, 7}, DType::kFloat32, seed, Placements{Shard{0}}, Placements{Shard{1}}),
          entry("replicated_to_s0", {9, 4}, DType::kFloat64, seed, Placements{Replicate{}}, Placements{Shard{0}}),
          entry("s1_to_replicated", {5, 13}, DType::kBFloat16, seed, Placements{Shard{1}}, Placements{Replicate{}}),
          entry("plain_to_s0", {6}, DType::kInt64, seed, std::nullopt, Placements{Shard{0}}),
          entry("s0_to_plain", {7, 3}, DType::kFloat16, seed, Placements{Shard{0}}, std::nullopt),
          entry("s0_to_s_last", {4, 5, 6}, DType::kInt32, seed, Placements{Shard{0}}, Placements{Shard{-1}})};
}

}  // namespace

void case_reshard_save(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  save_through(backend, state_of(reshard_entries(seed), mesh, Side::kSave), comm, dir);
}

void case_reshard_load(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed) {
  const std::vector<Entry> entries = reshard_entries(seed);
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  StateDict target = state_of(entries, mesh, Side::kLoad);
  load_through(backend, target, comm, dir);
  expect_loaded(target, entries, mesh, comm);
}

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Whether `message` is the same on every rank of `comm` (collective): a
// failure anywhere is reported alike everywhere.
bool same_on_every_rank(const CommPtr& comm, const std::string& message) {
  std::string first = message;
  uint64_t n = first.size();
  comm->broadcast(&n, sizeof n, 0);
  first.resize(n);
  comm->broadcast(first.data(), n, 0);
  return first == message;
}

bool supports(const StorageBackend& backend, ValueKind kind) {
  const auto& v = backend.caps.values;
  return std::find(v.begin(), v.end(), kind) != v.end();
}

}  // namespace

void case_missing_key(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, uint64_t seed) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  const std::vector<Entry> present = {entry("a", {8, 3}, DType::kFloat32, seed, Placements{Shard{0}}),
                                      entry("b", {4}, DType::kFloat32, seed, std::nullopt)};
  save_through(backend, state_of(present, mesh, Side::kSave), comm, dir);

  // Asked for and absent: a tensor "x" and "nested.y" (a value where the format stores values).
  const bool values = supports(backend, ValueKind::kInt64);
  const Tensor x_before = Tensor::full({2}, -7.0);
  StateDict target = state_of(present, mesh, Side::kLoad);
  StateDict untouched = target.clone();
  StateDict nested{{"y", values ? StateValue(int64_t{3}) : StateValue(Tensor::full({3}, -7.0))}};
  target.set("x", x_before.clone());
  target.set("nested", nested);
  std::string m;
  try {
    load_through(backend, target, comm, dir);
    ADD_FAILURE() << "a load asking for missing keys succeeded on " << rank_of(comm);
  } catch (const Error& e) {
    m = e.message();
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
    EXPECT_TRUE(contains(m, "'x'")) << m;
    EXPECT_TRUE(contains(m, "'nested.y'")) << m;
    EXPECT_FALSE(contains(m, "'a'")) << m;
    EXPECT_TRUE(contains(m, "rank")) << m;
  }
  EXPECT_TRUE(same_on_every_rank(comm, m)) << "rank " << comm->rank() << " reports: " << m;
  // Nothing was touched.
  for (const Entry& e : present) {
    EXPECT_TRUE(equal(local_of(target.at(e.key)), local_of(untouched.at(e.key)))) << "'" << e.key << "' changed";
  }
  EXPECT_TRUE(equal(target.at("x").as<Tensor>(), x_before));

  // allow_partial_load: what is there loads, the rest stays as it was.
  load_through(backend, target, comm, dir, /*allow_partial_load=*/true);
  expect_loaded(target, present, mesh, comm);
  EXPECT_TRUE(equal(target.at("x").as<Tensor>(), x_before));
  if (values) {
    EXPECT_EQ(nested.at("y").as<int64_t>(), 3);
  } else {
    EXPECT_TRUE(equal(nested.at("y").as<Tensor>(), Tensor::full({3}, -7.0)));
  }
}

namespace {

// ---- damage ----

// The last item of the first data file holding one: cutting inside it, or
// flipping a byte of it, damages that item and no other.
StoredItem pick_victim(const std::vector<StoredItem>& items) {
  std::optional<StoredItem> victim;
  for (const StoredItem& item : items) {
    if (item.data_length == 0) continue;
    if (victim && item.file != victim->file) break;
    victim = item;  // items are sorted by (file, offset)
  }
  if (!victim) throw std::runtime_error("the checkpoint has no tensor item to damage");
  return *victim;
}

void damage_local_file(const StoredItem& item, const std::string& path, Damage damage) {
  const uint64_t at = item.data_offset + item.data_length / 2;
  if (damage == Damage::kTruncate) {
    std::filesystem::resize_file(path, at);
    return;
  }
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  char c = 0;
  f.seekg(static_cast<std::streamoff>(at));
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x20);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(&c, 1);
  if (!f) throw std::runtime_error("cannot flip byte " + std::to_string(at) + " of " + path);
}

void damage_file(const StorageBackend& backend, const StoredItem& item, Damage damage) {
  if (!backend.edit_file) {
    damage_local_file(item, item.path, damage);
    return;
  }
  backend.edit_file(item.path, [&](const std::string& local) { damage_local_file(item, local, damage); });
}

// Whether `message` names a byte offset inside the item.
bool names_offset_within(const std::string& message, const StoredItem& item) {
  static const std::regex kOffset("byte offset ([0-9]+)");
  for (std::sregex_iterator it(message.begin(), message.end(), kOffset), end; it != end; ++it) {
    const uint64_t offset = std::stoull((*it)[1].str());
    if (offset >= item.item_offset && offset <= item.item_offset + item.item_length) return true;
  }
  return false;
}

}  // namespace

void case_damaged_item(const StorageBackend& backend, const CommPtr& comm, const std::string& dir, Damage damage,
                       uint64_t seed) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  const std::vector<Entry> entries = {entry("w", {64, 33}, DType::kFloat32, seed, Placements{Shard{0}}),
                                      entry("u", {20}, DType::kInt32, seed, Placements{Replicate{}}),
                                      entry("v", {5, 7}, DType::kFloat64, seed, Placements{Shard{1}})};
  save_through(backend, state_of(entries, mesh, Side::kSave), comm, dir);
  comm->barrier();
  const StoredItem victim = pick_victim(locate_items(backend, checkpoint_path(dir)));
  comm->barrier();  // every rank has read the intact metadata
  if (comm->rank() == 0) damage_file(backend, victim, damage);
  comm->barrier();

  StateDict target = state_of(entries, mesh, Side::kLoad);
  std::string m;
  try {
    load_through(backend, target, comm, dir);
    ADD_FAILURE() << "the load of a checkpoint whose item '" << victim.key << "' in " << victim.file << " is "
                  << (damage == Damage::kTruncate ? "truncated" : "corrupted") << " succeeded on " << rank_of(comm);
  } catch (const Error& e) {
    m = e.message();
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.what();
    EXPECT_TRUE(contains(m, "'" + victim.key + "'")) << "names the key '" << victim.key << "': " << m;
    EXPECT_TRUE(contains(m, victim.file)) << "names the file " << victim.file << ": " << m;
    EXPECT_TRUE(contains(m, "rank")) << m;
    if (backend.caps.names_offset) {
      EXPECT_TRUE(names_offset_within(m, victim))
          << "names a byte offset in [" << victim.item_offset << ", " << victim.item_offset + victim.item_length
          << "]: " << m;
    }
  }
  EXPECT_TRUE(same_on_every_rank(comm, m)) << "rank " << comm->rank() << " reports: " << m;
}

namespace {

// ---- failing saves ----

// The one use of the fault-injecting file system: every write from the
// first one on fails with EIO.
FileSystemPtr failing_file_system() {
  auto fs = std::make_shared<FaultInjectingFileSystem>();
  fs->add_fault(Fault{.op = FsOp::kPwrite, .nth = 1, .error = EIO, .repeat = true});
  return fs;
}

// Forwards to a backend's writer; throws once that writer has written this
// rank's data, when asked to.
class FailingAfterWrite final : public StorageWriter {
 public:
  FailingAfterWrite(std::unique_ptr<StorageWriter> inner, bool fail) : inner_(std::move(inner)), fail_(fail) {}
  void set_up(int rank, int world_size, bool is_coordinator) override {
    rank_ = rank;
    inner_->set_up(rank, world_size, is_coordinator);
  }
  void prepare() override { inner_->prepare(); }
  std::vector<WriteResult> write_data(const SavePlan& plan, SavePlanner& planner) override {
    auto results = inner_->write_data(plan, planner);
    if (fail_) throw Error(ErrorCode::kIo, "rank " + std::to_string(rank_) + " stops after writing its data");
    return results;
  }
  void finish(Metadata metadata, const std::vector<std::vector<WriteResult>>& results) override {
    inner_->finish(std::move(metadata), results);
  }
  void abort() noexcept override { inner_->abort(); }

 private:
  std::unique_ptr<StorageWriter> inner_;
  bool fail_;
  int rank_ = 0;
};

std::set<std::string> listing(const StorageBackend& backend, const std::string& dir) {
  if (backend.list_dir) return backend.list_dir(dir);
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::string joined(const std::set<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

struct Generation {
  std::vector<Entry> tensors;
  int64_t step;
};

// 20 rows of "w" over at most 5 ranks: every rank, the failing last one
// included, has data to write.
Generation generation(uint64_t seed, int64_t step) {
  return {{entry("w", {20, 5}, DType::kFloat32, seed, Placements{Shard{0}}),
           entry("b", {6}, DType::kFloat64, seed, std::nullopt)},
          step};
}

StateDict state_of(const Generation& g, const DeviceMesh& mesh, Side side, bool values) {
  StateDict sd = state_of(g.tensors, mesh, side);
  if (values) sd.set("step", side == Side::kSave ? g.step : int64_t{-1});
  return sd;
}

void expect_generation(const StorageBackend& backend, const Generation& g, const CommPtr& comm,
                       const std::string& dir, bool values, const char* which) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  StateDict target = state_of(g, mesh, Side::kLoad, values);
  load_through(backend, target, comm, dir);
  SCOPED_TRACE(std::string("checkpoint ") + which);
  expect_loaded(target, g.tensors, mesh, comm);
  if (values) {
    EXPECT_EQ(target.at("step").as<int64_t>(), g.step);
  }
}

}  // namespace

void case_failed_overwrite(const StorageBackend& backend, const CommPtr& comm, const std::string& dir,
                           SaveFailure failure, uint64_t seed) {
  const bool values = supports(backend, ValueKind::kInt64);
  const int failing = comm->size() - 1;
  const Generation a = generation(seed, 1), b = generation(seed + 1, 2);
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  save_through(backend, state_of(a, mesh, Side::kSave, values), comm, dir);
  comm->barrier();
  const std::set<std::string> before = listing(backend, dir);
  comm->barrier();

  const std::string path = checkpoint_path(dir);
  std::unique_ptr<StorageWriter> writer;
  std::string cause;
  if (failure == SaveFailure::kFileWrite) {
    writer = backend.make_writer(path, context_of(comm), comm->rank() == failing ? failing_file_system() : nullptr);
    cause = std::strerror(EIO);
  } else {
    writer = std::make_unique<FailingAfterWrite>(backend.make_writer(path, context_of(comm), nullptr),
                                                 comm->rank() == failing);
    cause = "stops after writing its data";
  }
  std::string m;
  try {
    save(state_of(b, mesh, Side::kSave, values), *writer, SaveOptions{.comm = comm});
    ADD_FAILURE() << "the save meant to fail on rank " << failing << " succeeded on " << rank_of(comm);
  } catch (const Error& e) {
    m = e.message();
    const std::string who = "rank " + std::to_string(failing) + " (of " + std::to_string(comm->size()) + ")";
    EXPECT_TRUE(contains(m, who + " while writing data")) << "names the failing rank and phase: " << m;
    EXPECT_TRUE(contains(m, cause)) << "names the cause: " << m;
  }
  EXPECT_TRUE(same_on_every_rank(comm, m)) << "rank " << comm->rank() << " reports: " << m;
  writer.reset();
  comm->barrier();
  if (comm->rank() == 0) {
    const std::set<std::string> after = listing(backend, dir);
    EXPECT_EQ(after, before) << "left beside the checkpoint: " << joined(after) << " (before: " << joined(before)
                             << ")";
  }
  expect_generation(backend, a, comm, dir, values, "A after the failed save of B");

  // The failure, not the backend, kept A: a clean save of B replaces it.
  save_through(backend, state_of(b, mesh, Side::kSave, values), comm, dir);
  expect_generation(backend, b, comm, dir, values, "B saved over A");
}

}  // namespace dcpp::testing
