// Non-tensor values, Stateful objects and nested {model, optim, extra}
// state dicts round trip; a model is loaded alone from a fuller checkpoint.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>

#include "checkpoint/memory_storage.h"
#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

Bytes bytes_of(std::initializer_list<int> v) {
  Bytes b;
  for (int x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

// A training-loop object with its own state (PyTorch's Stateful protocol).
class Progress : public Stateful {
 public:
  int64_t epoch = 0;
  std::string tag;
  Tensor history = Tensor::zeros({5});
  int loads = 0;

  StateDict state_dict() override { return StateDict{{"epoch", epoch}, {"tag", tag}, {"history", history}}; }
  void load_state_dict(const StateDict& state) override {
    epoch = state.at("epoch").as<int64_t>();
    tag = state.at("tag").as<std::string>();
    const Tensor& h = state.at("history").as<Tensor>();
    if (!h.shares_storage_with(history)) history.copy_from(h);
    ++loads;
  }
};

struct Fixture {
  Tensor w, b, exp_avg;
  std::shared_ptr<Progress> progress = std::make_shared<Progress>();
  StateDict sd;
};

// {model, optim, extra} with every kind of value; `fill` chooses real data
// (true) or sentinels (false).
Fixture make_state(bool fill) {
  Fixture f;
  Generator gen(4242);
  f.w = fill ? Tensor::uniform({4, 3}, -1, 1, gen) : Tensor::full({4, 3}, -7.0);
  f.b = fill ? Tensor::uniform({4}, -1, 1, gen) : Tensor::full({4}, -7.0);
  f.exp_avg = fill ? Tensor::uniform({4, 3}, -1, 1, gen) : Tensor::full({4, 3}, -7.0);
  if (fill) {
    f.progress->epoch = 12;
    f.progress->tag = "warmup-done";
    f.progress->history.copy_from(Tensor::arange(5));
  }
  StateDict model{{"w", f.w}, {"b", f.b}};
  StateDict group{{"lr", fill ? 0.125 : 0.0}, {"params", StateList{fill ? "w" : "", fill ? "b" : ""}}};
  StateDict optim{{"state", StateDict{{"w", StateDict{{"step", int64_t{fill ? 3 : 0}}, {"exp_avg", f.exp_avg}}}}},
                  {"param_groups", StateList{group}}};
  StateDict extra{{"step", int64_t{fill ? 1234567890123 : 0}},
                  {"lr", fill ? 3.5e-4 : 0.0},
                  {"name", fill ? "run-1 ü" : ""},
                  {"flag", fill},
                  {"empty", std::string()},
                  {"blob", fill ? bytes_of({0, 1, 255, 127, 0}) : Bytes{}},
                  {"progress", std::shared_ptr<Stateful>(f.progress)}};
  f.sd = StateDict{{"model", model}, {"optim", optim}, {"extra", extra}};
  return f;
}

void expect_loaded(const Fixture& got, const Fixture& want) {
  EXPECT_TRUE(equal(got.w, want.w));
  EXPECT_TRUE(equal(got.b, want.b));
  EXPECT_TRUE(equal(got.exp_avg, want.exp_avg));
  const StateDict& extra = got.sd.at("extra").dict();
  EXPECT_EQ(extra.at("step").as<int64_t>(), 1234567890123);
  EXPECT_EQ(extra.at("lr").as<double>(), 3.5e-4);
  EXPECT_EQ(extra.at("name").as<std::string>(), "run-1 ü");
  EXPECT_EQ(extra.at("flag").as<bool>(), true);
  EXPECT_EQ(extra.at("empty").as<std::string>(), "");
  EXPECT_EQ(extra.at("blob").as<Bytes>(), bytes_of({0, 1, 255, 127, 0}));
  const StateDict& optim = got.sd.at("optim").dict();
  EXPECT_EQ(optim.at("state").dict().at("w").dict().at("step").as<int64_t>(), 3);
  StateList groups = optim.at("param_groups").as<StateList>();
  ASSERT_EQ(groups.size(), 1u);
  StateDict group = groups[0].as<StateDict>();
  EXPECT_EQ(group.at("lr").as<double>(), 0.125);
  StateList params = group.at("params").as<StateList>();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].as<std::string>(), "w");
  EXPECT_EQ(params[1].as<std::string>(), "b");
  // The stateful object was handed its loaded state exactly once.
  EXPECT_EQ(got.progress->loads, 1);
  EXPECT_EQ(got.progress->epoch, 12);
  EXPECT_EQ(got.progress->tag, "warmup-done");
  EXPECT_TRUE(equal(got.progress->history, Tensor::arange(5)));
}

TEST(checkpoint_values, NestedStateDictRoundTripsThroughTheNativeFormat) {
  TempDir tmp;
  Fixture saved = make_state(true);
  save(saved.sd, tmp.path());

  Fixture target = make_state(false);
  StateDict extra_before = target.sd.at("extra").dict();
  load(target.sd, tmp.path());
  expect_loaded(target, saved);
  EXPECT_TRUE(target.sd.at("extra").dict().is(extra_before));  // filled in place
  EXPECT_EQ(saved.progress->loads, 0);

  // The nesting is recorded in the metadata: list elements by index.
  CheckpointReader reader = open_checkpoint(tmp.path());
  const auto& paths = reader.metadata().paths;
  ASSERT_TRUE(paths.count("optim.param_groups.0.lr"));
  const auto& p = paths.at("optim.param_groups.0.lr");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].key, "optim");
  EXPECT_EQ(p[1].key, "param_groups");
  EXPECT_TRUE(p[2].is_index);
  EXPECT_EQ(p[2].index, 0);
  EXPECT_EQ(p[3].key, "lr");
  EXPECT_TRUE(paths.count("extra.progress.epoch"));
  EXPECT_EQ(reader.value("extra.blob").as<Bytes>(), bytes_of({0, 1, 255, 127, 0}));
  EXPECT_EQ(reader.value("optim.param_groups.0.params.1").as<std::string>(), "b");
}

TEST(checkpoint_values, ModelAloneLoadsFromAModelOptimExtraCheckpoint) {
  TempDir tmp;
  Fixture saved = make_state(true);
  save(saved.sd, tmp.path());
  Tensor w = Tensor::full({4, 3}, -7.0);
  Tensor b = Tensor::full({4}, -7.0);
  StateDict only_model{{"model", StateDict{{"w", w}, {"b", b}}}};
  load(only_model, tmp.path());
  EXPECT_TRUE(equal(w, saved.w));
  EXPECT_TRUE(equal(b, saved.b));
  EXPECT_EQ(only_model.size(), 1u);
}

TEST(checkpoint_values, ValuesAreWrittenOnceAcrossRanksAndLoadedEverywhere) {
  auto store = std::make_shared<MemoryStore>();
  run_ranks(3, [&](CommPtr comm) {
    StateDict sd{{"step", int64_t{77}}, {"lr", 0.5}, {"tag", "x"}, {"t", Tensor::arange(6)}};
    MemoryWriter writer(store);
    save(sd, writer, SaveOptions{.comm = comm, .check_replicated = true});
  });
  ASSERT_TRUE(store->metadata);
  EXPECT_EQ(store->metadata->values.size(), 3u);
  EXPECT_EQ(store->metadata->tensors.at("t").chunks.size(), 1u);  // replicated: one copy
  // Dedup, largest first, to the rank with the fewest bytes so far (ties to
  // the lowest): t (24 B) → 0, step (8 B) → 1, lr (8 B) → 2, tag (1 B) → 1.
  EXPECT_EQ(store->files.at("rank-0").size(), 24u);
  EXPECT_EQ(store->files.at("rank-1").size(), 9u);
  EXPECT_EQ(store->files.at("rank-2").size(), 8u);

  run_ranks(3, [&](CommPtr comm) {
    StateDict sd{{"step", int64_t{0}}, {"lr", 0.0}, {"tag", ""}, {"t", Tensor::full({6}, -7.0)}};
    MemoryReader reader(store);
    load(sd, reader, LoadOptions{.comm = comm});
    EXPECT_EQ(sd.at("step").as<int64_t>(), 77);
    EXPECT_EQ(sd.at("lr").as<double>(), 0.5);
    EXPECT_EQ(sd.at("tag").as<std::string>(), "x");
    EXPECT_TRUE(equal(sd.at("t").as<Tensor>(), Tensor::arange(6)));
  });
}

TEST(checkpoint_values, AnyRankCanCoordinate) {
  TempDir tmp;
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    StateDict sd{{"w", distribute_tensor(Tensor::arange(7), mesh, {Shard{0}})}, {"n", int64_t{5}}};
    save(sd, tmp.path(), SaveOptions{.coordinator_rank = 2});
    DTensor w = distribute_tensor(Tensor::zeros({7}), mesh, {Shard{0}});
    StateDict back{{"w", w}, {"n", int64_t{0}}};
    load(back, tmp.path(), LoadOptions{.coordinator_rank = 1});
    EXPECT_TRUE(equal(w.full_tensor(), Tensor::arange(7)));
    EXPECT_EQ(back.at("n").as<int64_t>(), 5);
    try {
      save(sd, tmp.path(), SaveOptions{.coordinator_rank = 3});
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  });
  EXPECT_EQ(open_checkpoint(tmp.path()).metadata().world_size, 3);
}

TEST(checkpoint_values, DivergentReplicasFailWithCheckReplicated) {
  auto store = std::make_shared<MemoryStore>();
  std::mutex mu;
  std::vector<std::string> messages;
  run_ranks(3, [&](CommPtr comm) {
    Tensor t = Tensor::arange(6);
    if (comm->rank() == 1) t.set({2}, 100.0);
    StateDict sd{{"same", Tensor::arange(4)}, {"t", t}, {"step", int64_t{comm->rank() == 2 ? 5 : 4}}};
    MemoryWriter writer(store);
    try {
      save(sd, writer, SaveOptions{.comm = comm, .check_replicated = true});
      ADD_FAILURE() << "save of divergent replicas succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      std::lock_guard lock(mu);
      messages.push_back(e.message());
    }
  });
  ASSERT_EQ(messages.size(), 3u);
  for (const auto& m : messages) {
    EXPECT_EQ(m, messages[0]);  // every rank reports the same thing
    EXPECT_NE(m.find("'t'"), std::string::npos) << m;
    EXPECT_NE(m.find("ranks 0, 2"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1"), std::string::npos) << m;
  }
  EXPECT_EQ(store->commits, 0);
  EXPECT_EQ(store->aborts, 3);

  // Without the option, dedup keeps one copy silently (as PyTorch does).
  run_ranks(3, [&](CommPtr comm) {
    Tensor t = Tensor::arange(6);
    if (comm->rank() == 1) t.set({2}, 100.0);
    StateDict sd{{"t", t}};
    MemoryWriter writer(store);
    save(sd, writer, SaveOptions{.comm = comm});
  });
  EXPECT_EQ(store->commits, 1);
}

TEST(checkpoint_values, NullValuesAndKeyCollisionsAreRejected) {
  StateDict with_null{{"a", StateValue()}};
  try {
    flatten_state_dict(with_null);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("'a'"), std::string::npos);
  }
  StateDict collide{{"a.b", int64_t{1}}, {"a", StateDict{{"b", int64_t{2}}}}};
  try {
    flatten_state_dict(collide);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("'a.b'"), std::string::npos);
  }
}

TEST(checkpoint_values, EncodingIsLittleEndianAndExact) {
  // Literal byte tables, independent of the encoder.
  EXPECT_EQ(encode_value(StateValue(int64_t{0x0102030405060708})), bytes_of({8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(encode_value(StateValue(1.0)), bytes_of({0, 0, 0, 0, 0, 0, 0xf0, 0x3f}));
  EXPECT_EQ(encode_value(StateValue(true)), bytes_of({1}));
  EXPECT_EQ(encode_value(StateValue(false)), bytes_of({0}));
  EXPECT_EQ(encode_value(StateValue("hé")), bytes_of({'h', 0xc3, 0xa9}));
  EXPECT_EQ(decode_value(ValueKind::kInt64, bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "k")
                .as<int64_t>(),
            -1);
  try {
    decode_value(ValueKind::kDouble, bytes_of({1, 2, 3}), "lr");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(e.message().find("'lr'"), std::string::npos);
  }
}

}  // namespace
}  // namespace dcpp::testing
