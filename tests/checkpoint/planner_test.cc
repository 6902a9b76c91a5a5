// Planner units: flattening, the coordinator's global plan (dedup and
// validation), load plans (overlap boxes, validation), and user subclasses
// that rename or filter keys.
#include <gtest/gtest.h>

#include "checkpoint/memory_storage.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/planner.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

WriteItem chunk(const std::string& fqn, Shape global, Shape offsets, Shape sizes, DType dtype = DType::kFloat32) {
  WriteItem item;
  item.fqn = fqn;
  item.dtype = dtype;
  item.global_shape = std::move(global);
  item.offsets = std::move(offsets);
  item.sizes = std::move(sizes);
  item.nbytes = static_cast<uint64_t>(shape_numel(item.sizes)) * dtype_size(dtype);
  return item;
}

WriteItem whole(const std::string& fqn, Shape shape) {
  Shape zeros(shape.size(), 0);
  return chunk(fqn, shape, zeros, shape);
}

std::vector<std::string> fqns(const SavePlan& plan) {
  std::vector<std::string> out;
  for (const auto& item : plan.items) out.push_back(item.fqn);
  return out;
}

// Runs the global plan and returns the error message (empty if none), checking the code.
std::string global_plan_error(std::vector<SavePlan> plans, ErrorCode code = ErrorCode::kInvalidArgument) {
  DefaultSavePlanner planner;
  try {
    planner.create_global_plan(std::move(plans));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.message();
  }
  return "";
}

// ---------------- flattening ----------------

TEST(checkpoint_flatten, DottedKeysListsAndPaths) {
  StateDict sd{{"model", StateDict{{"w", Tensor::zeros({2})}, {"sub", StateDict{{"b", int64_t{1}}}}}},
               {"groups", StateList{StateDict{{"lr", 0.1}}, "x"}},
               {"empty", StateDict{}}};
  FlatStateDict flat = flatten_state_dict(sd);
  EXPECT_EQ(flat.keys, (std::vector<std::string>{"model.w", "model.sub.b", "groups.0.lr", "groups.1"}));
  const auto& p = flat.paths.at("groups.0.lr");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_FALSE(p[0].is_index);
  EXPECT_EQ(p[0].key, "groups");
  EXPECT_TRUE(p[1].is_index);
  EXPECT_EQ(p[1].index, 0);
  EXPECT_EQ(p[2].key, "lr");
  EXPECT_EQ(flat_key(p), "groups.0.lr");
  // Values alias the caller's tensors.
  EXPECT_TRUE(flat.values.at("model.w").as<Tensor>().shares_storage_with(
      sd.at("model").dict().at("w").as<Tensor>()));

  flat.rename("model.w", "w");
  EXPECT_EQ(flat.keys[0], "w");
  EXPECT_TRUE(flat.erase("groups.1"));
  EXPECT_FALSE(flat.erase("groups.1"));
  EXPECT_EQ(flat.keys.size(), 3u);
}

// ---------------- global plan ----------------

TEST(checkpoint_global_plan, DedupGivesSharedItemsToTheRankWithFewestBytes) {
  // rank 0 alone holds a (100 B); r1 (40 B) and r2 (24 B) are on ranks 0-2,
  // r3 (16 B) on ranks 1-2. Largest first, fewest bytes wins, ties to the
  // lowest rank: r1 → 1 (0 vs 0 → 1), r2 → 2, r3 → 2 (24 < 40).
  std::vector<SavePlan> plans(3);
  plans[0].items = {whole("a", {25}), whole("r1", {10}), whole("r2", {6})};
  plans[1].items = {whole("r1", {10}), whole("r2", {6}), whole("r3", {4})};
  plans[2].items = {whole("r3", {4}), whole("r1", {10}), whole("r2", {6})};
  DefaultSavePlanner planner;
  auto finals = planner.create_global_plan(plans);
  ASSERT_EQ(finals.size(), 3u);
  EXPECT_EQ(fqns(finals[0]), (std::vector<std::string>{"a"}));
  EXPECT_EQ(fqns(finals[1]), (std::vector<std::string>{"r1"}));
  EXPECT_EQ(fqns(finals[2]), (std::vector<std::string>{"r3", "r2"}));  // rank 2's own order
  // Deterministic.
  auto again = DefaultSavePlanner().create_global_plan(plans);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(fqns(again[r]), fqns(finals[r]));
}

TEST(checkpoint_global_plan, ShardedChunksTileTheTensor) {
  std::vector<SavePlan> plans(3);
  plans[0].items = {chunk("w", {10, 3}, {0, 0}, {4, 3})};
  plans[1].items = {chunk("w", {10, 3}, {4, 0}, {4, 3})};
  plans[2].items = {chunk("w", {10, 3}, {8, 0}, {2, 3})};
  EXPECT_EQ(global_plan_error(plans), "");
}

TEST(checkpoint_global_plan, OverlapIsNamed) {
  std::vector<SavePlan> plans(2);
  plans[0].items = {chunk("w", {5}, {0}, {3})};
  plans[1].items = {chunk("w", {5}, {2}, {3})};
  std::string msg = global_plan_error(plans);
  EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 1"), std::string::npos) << msg;
}

TEST(checkpoint_global_plan, GapIsNamed) {
  std::vector<SavePlan> plans(2);
  plans[0].items = {chunk("w", {5}, {0}, {2})};
  plans[1].items = {chunk("w", {5}, {3}, {2})};
  std::string msg = global_plan_error(plans);
  EXPECT_NE(msg.find("'w' cover 4 of its 5"), std::string::npos) << msg;
}

TEST(checkpoint_global_plan, OutOfBoundsIsNamed) {
  std::vector<SavePlan> plans(2);
  plans[0].items = {chunk("w", {5}, {0}, {3})};
  plans[1].items = {chunk("w", {5}, {3}, {3})};
  std::string msg = global_plan_error(plans);
  EXPECT_NE(msg.find("outside"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 1"), std::string::npos) << msg;
}

TEST(checkpoint_global_plan, RanksMustAgreeOnDtypeShapeKindAndSizes) {
  {
    std::vector<SavePlan> plans(2);
    plans[0].items = {chunk("w", {4}, {0}, {2})};
    plans[1].items = {chunk("w", {4}, {2}, {2}, DType::kBFloat16)};
    std::string msg = global_plan_error(plans);
    EXPECT_NE(msg.find("'w' has dtype float32 and bfloat16 on rank 0 and rank 1"), std::string::npos) << msg;
  }
  {
    std::vector<SavePlan> plans(2);
    plans[0].items = {chunk("w", {4}, {0}, {2})};
    plans[1].items = {chunk("w", {5}, {2}, {2})};
    std::string msg = global_plan_error(plans);
    EXPECT_NE(msg.find("global shape [4] and [5]"), std::string::npos) << msg;
  }
  {
    std::vector<SavePlan> plans(2);
    plans[0].items = {whole("w", {4})};
    WriteItem v;
    v.fqn = "w";
    v.type = WriteItemType::kValue;
    v.value_kind = ValueKind::kInt64;
    v.nbytes = 8;
    plans[1].items = {v};
    std::string msg = global_plan_error(plans);
    EXPECT_NE(msg.find("'w' is a tensor on rank 0 but a value on rank 1"), std::string::npos) << msg;
  }
  {
    std::vector<SavePlan> plans(2);
    plans[0].items = {chunk("w", {4}, {0}, {4})};
    plans[1].items = {chunk("w", {4}, {0}, {2})};
    std::string msg = global_plan_error(plans);
    EXPECT_NE(msg.find("sizes"), std::string::npos) << msg;
  }
}

TEST(checkpoint_global_plan, NonGridTilingsAreCheckedExactly) {
  // An L-shaped arrangement that no single grid cut describes: valid.
  std::vector<SavePlan> ok(3);
  ok[0].items = {chunk("w", {4, 3}, {0, 0}, {2, 3})};
  ok[1].items = {chunk("w", {4, 3}, {2, 0}, {2, 1})};
  ok[2].items = {chunk("w", {4, 3}, {2, 1}, {2, 2})};
  EXPECT_EQ(global_plan_error(ok), "");
  // The big chunk overlaps a small one (and leaves a gap).
  std::vector<SavePlan> bad(3);
  bad[0].items = {chunk("w", {4, 3}, {0, 0}, {3, 2})};
  bad[1].items = {chunk("w", {4, 3}, {2, 1}, {2, 2})};
  bad[2].items = {chunk("w", {4, 3}, {3, 0}, {1, 1}), chunk("v", {1}, {0}, {1})};
  std::string msg = global_plan_error(bad);
  EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
}

TEST(checkpoint_global_plan, ManyChunksValidateQuickly) {
  // 256 × 256 chunks of a [1024, 1024] tensor over 64 ranks (a grid): the
  // O(n log n) path. (Correctness only; no timing is asserted.)
  const int ranks = 64;
  std::vector<SavePlan> plans(ranks);
  int k = 0;
  for (int64_t i = 0; i < 256; ++i) {
    for (int64_t j = 0; j < 256; ++j) {
      plans[k++ % ranks].items.push_back(chunk("big", {1024, 1024}, {i * 4, j * 4}, {4, 4}));
    }
  }
  EXPECT_EQ(global_plan_error(plans), "");
  plans[5].items.pop_back();
  std::string msg = global_plan_error(plans);
  EXPECT_NE(msg.find("cover 1048560 of its 1048576"), std::string::npos) << msg;
}

TEST(checkpoint_global_plan, ZeroSizeAndEmptyShards) {
  std::vector<SavePlan> plans(2);
  plans[0].empty_chunks = {chunk("z", {0, 4}, {0, 0}, {0, 4})};
  plans[1].empty_chunks = {chunk("z", {0, 4}, {0, 0}, {0, 4})};
  plans[0].items = {chunk("t", {1}, {0}, {1})};
  plans[1].empty_chunks.push_back(chunk("t", {1}, {1}, {0}));
  DefaultSavePlanner planner;
  auto finals = planner.create_global_plan(plans);
  EXPECT_EQ(fqns(finals[0]), (std::vector<std::string>{"t"}));
  EXPECT_TRUE(finals[1].items.empty());
  // Each rank keeps its own empty chunks (a writer may need to know of them).
  ASSERT_EQ(finals[0].empty_chunks.size(), 1u);
  EXPECT_EQ(finals[0].empty_chunks[0].fqn, "z");
  ASSERT_EQ(finals[1].empty_chunks.size(), 2u);
  EXPECT_EQ(finals[1].empty_chunks[1].fqn, "t");
  // A non-empty tensor that only has empty chunks is not covered.
  std::vector<SavePlan> bad(1);
  bad[0].empty_chunks = {chunk("t", {3}, {3}, {0})};
  EXPECT_NE(global_plan_error(bad).find("cover 0 of its 3"), std::string::npos);
}

// ---------------- local plans ----------------

TEST(checkpoint_local_plan, PartialAndMetaTensorsAreRejectedNamingTheKey) {
  run_ranks(2, [](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {2});
    DefaultSavePlanner planner;
    FlatStateDict flat = flatten_state_dict(
        StateDict{{"ok", Tensor::zeros({2})}, {"p", DTensor(Tensor::zeros({3}), mesh, {Partial{}}, {3})}});
    planner.set_up(flat, comm->rank(), comm->rank() == 0);
    try {
      planner.create_local_plan();
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(e.message().find("'p'"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("Partial"), std::string::npos) << e.message();
    }
  });
  DefaultSavePlanner planner;
  planner.set_up(flatten_state_dict(StateDict{{"m", Tensor::empty({2}, DType::kFloat32, Device::kMeta)}}), 0, true);
  try {
    planner.create_local_plan();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("'m'"), std::string::npos);
  }
}

TEST(checkpoint_local_plan, DTensorChunksCarryGlobalOffsets) {
  run_ranks(3, [](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    // 10 over 3 → 4, 4, 2 rows (docs/design.md §2); 1 over 3 → 1, 0, 0.
    const Shape rows = {4, 4, 2}, offs = {0, 4, 8};
    const int r = comm->rank();
    DTensor w(Tensor::zeros({rows[r], 3}), mesh, {Shard{0}}, {10, 3});
    DTensor tiny(Tensor::zeros({r == 0 ? 1 : 0}), mesh, {Shard{0}}, {1});
    DefaultSavePlanner planner;
    planner.set_up(flatten_state_dict(StateDict{{"w", w}, {"tiny", tiny}, {"n", int64_t{1}}}), r, r == 0);
    SavePlan plan = planner.create_local_plan();
    ASSERT_EQ(plan.items.size(), r == 0 ? 3u : 2u);
    EXPECT_EQ(plan.items[0].offsets, (Shape{offs[r], 0}));
    EXPECT_EQ(plan.items[0].sizes, (Shape{rows[r], 3}));
    EXPECT_EQ(plan.items[0].global_shape, (Shape{10, 3}));
    EXPECT_EQ(plan.items[0].nbytes, static_cast<uint64_t>(rows[r] * 3 * 4));
    EXPECT_EQ(plan.items.back().type, WriteItemType::kValue);
    EXPECT_EQ(plan.items.back().nbytes, 8u);
    // The empty shard is still recorded.
    EXPECT_EQ(plan.empty_chunks.size(), r == 0 ? 0u : 1u);
  });
}

// ---------------- load plans ----------------

Metadata metadata_with(const std::string& key, Shape global, std::vector<std::pair<Shape, Shape>> chunks,
                       DType dtype = DType::kFloat32) {
  Metadata md;
  TensorMeta& tm = md.tensors[key];
  tm.dtype = dtype;
  tm.global_shape = std::move(global);
  for (auto& [o, s] : chunks) tm.chunks.push_back(ChunkMeta{o, s, {}});
  return md;
}

TEST(checkpoint_load_plan, OverlapBoxesOfEverySavedChunk) {
  // Saved on 2 ranks as [0:5) and [5:10); loaded on 3 ranks as 4, 4, 2.
  Metadata md = metadata_with("w", {10, 2}, {{{0, 0}, {5, 2}}, {{5, 0}, {5, 2}}});
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    const int r = comm->rank();
    const Shape rows = {4, 4, 2};
    StateDict sd{{"w", DTensor(Tensor::zeros({rows[r], 2}), mesh, {Shard{0}}, {10, 2})}};
    DefaultLoadPlanner planner;
    planner.set_up(sd, md, r, r == 0);
    LoadPlan plan = planner.create_local_plan();
    if (r == 0) {  // rows [0, 4): inside chunk 0
      ASSERT_EQ(plan.items.size(), 1u);
      EXPECT_EQ(plan.items[0].chunk_index, 0u);
      EXPECT_EQ(plan.items[0].storage_offsets, (Shape{0, 0}));
      EXPECT_EQ(plan.items[0].dest_offsets, (Shape{0, 0}));
      EXPECT_EQ(plan.items[0].lengths, (Shape{4, 2}));
    } else if (r == 1) {  // rows [4, 8): row 4 of chunk 0, rows 5-7 of chunk 1
      ASSERT_EQ(plan.items.size(), 2u);
      EXPECT_EQ(plan.items[0].chunk_index, 0u);
      EXPECT_EQ(plan.items[0].storage_offsets, (Shape{4, 0}));
      EXPECT_EQ(plan.items[0].dest_offsets, (Shape{0, 0}));
      EXPECT_EQ(plan.items[0].lengths, (Shape{1, 2}));
      EXPECT_EQ(plan.items[1].chunk_index, 1u);
      EXPECT_EQ(plan.items[1].storage_offsets, (Shape{0, 0}));
      EXPECT_EQ(plan.items[1].dest_offsets, (Shape{1, 0}));
      EXPECT_EQ(plan.items[1].lengths, (Shape{3, 2}));
    } else {  // rows [8, 10): rows 3-4 of chunk 1
      ASSERT_EQ(plan.items.size(), 1u);
      EXPECT_EQ(plan.items[0].chunk_index, 1u);
      EXPECT_EQ(plan.items[0].storage_offsets, (Shape{3, 0}));
      EXPECT_EQ(plan.items[0].dest_offsets, (Shape{0, 0}));
      EXPECT_EQ(plan.items[0].lengths, (Shape{2, 2}));
    }
  });
}

TEST(checkpoint_load_plan, OneErrorListsEveryOffendingKeyBeforeTouchingAnything) {
  Metadata md = metadata_with("w", {4}, {{{0}, {4}}});
  md.tensors["t"] = md.tensors["w"];
  md.values["v"].kind = ValueKind::kInt64;
  Tensor w = Tensor::full({5}, -7.0);  // shape mismatch
  Tensor t = Tensor::full({4}, -7.0);  // fine
  StateDict sd{{"w", w}, {"t", t}, {"v", Tensor::zeros({1})}, {"gone", Tensor::zeros({1})}, {"gone2", 1.5}};
  DefaultLoadPlanner planner;
  try {
    planner.set_up(sd, md, 0, true);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string& m = e.message();
    EXPECT_NE(m.find("'gone', 'gone2'"), std::string::npos) << m;
    EXPECT_NE(m.find("'w' has global shape [4] in the checkpoint but [5]"), std::string::npos) << m;
    EXPECT_NE(m.find("'v' is a tensor in the state dict but a int64 value"), std::string::npos) << m;
    EXPECT_EQ(m.find("'t'"), std::string::npos) << m;
  }
  EXPECT_TRUE(equal(t, Tensor::full({4}, -7.0)));
}

// ---------------- user planners ----------------

// Saves everything but the optimizer.
class SkipOptimPlanner : public DefaultSavePlanner {
 public:
  void set_up(const FlatStateDict& state_dict, int rank, bool is_coordinator) override {
    FlatStateDict kept = state_dict;
    for (const auto& key : state_dict.keys) {
      if (key.rfind("optim.", 0) == 0) kept.erase(key);
    }
    DefaultSavePlanner::set_up(kept, rank, is_coordinator);
  }
};

// Loads `model.*` of the checkpoint into a bare model state dict.
class StripModelPrefix : public DefaultLoadPlanner {
 protected:
  std::optional<std::string> checkpoint_key(const std::string& key) const override { return "model." + key; }
};

// Loads only the `model` part of a {model, optim} state dict.
class ModelOnly : public DefaultLoadPlanner {
 protected:
  std::optional<std::string> checkpoint_key(const std::string& key) const override {
    if (key.rfind("model.", 0) != 0) return std::nullopt;
    return key;
  }
};

TEST(checkpoint_user_planners, SavePlannerDropsKeysLoadPlannersRenameAndFilter) {
  auto store = std::make_shared<MemoryStore>();
  Generator gen(5);
  Tensor w = Tensor::uniform({3, 2}, -1, 1, gen), m = Tensor::uniform({3, 2}, -1, 1, gen);
  {
    StateDict sd{{"model", StateDict{{"w", w}}}, {"optim", StateDict{{"m", m}}}};
    MemoryWriter writer(store);
    save(sd, writer, SaveOptions{.planner = std::make_shared<SkipOptimPlanner>()});
  }
  EXPECT_EQ(store->metadata->tensors.size(), 1u);
  EXPECT_TRUE(store->metadata->tensors.count("model.w"));
  EXPECT_FALSE(store->metadata->paths.count("optim.m"));

  // Full save for the load side.
  {
    StateDict sd{{"model", StateDict{{"w", w}}}, {"optim", StateDict{{"m", m}}}};
    MemoryWriter writer(store);
    save(sd, writer);
  }
  {
    Tensor target = Tensor::full({3, 2}, -7.0);
    StateDict bare{{"w", target}};
    MemoryReader reader(store);
    load(bare, reader, LoadOptions{.planner = std::make_shared<StripModelPrefix>()});
    EXPECT_TRUE(equal(target, w));
  }
  {
    Tensor tw = Tensor::full({3, 2}, -7.0), tm = Tensor::full({3, 2}, -7.0);
    StateDict sd{{"model", StateDict{{"w", tw}}}, {"optim", StateDict{{"m", tm}, {"not_saved", 1.0}}}};
    MemoryReader reader(store);
    load(sd, reader, LoadOptions{.planner = std::make_shared<ModelOnly>()});
    EXPECT_TRUE(equal(tw, w));
    EXPECT_TRUE(equal(tm, Tensor::full({3, 2}, -7.0)));  // filtered out: untouched
  }
}

}  // namespace
}  // namespace dcpp::testing
