// Incremental saves through CheckpointManager: a fine-tuning run that
// changes only some layers writes only those layers; the new step refers to
// the data files of the earlier step for the rest, loads the same as a full
// save, passes verify, and retention keeps what kept steps refer to.
// Expected values are the tensors each step was saved from.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>

#include "dcpp/checkpoint_manager.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/inspect.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kLayers = 20;

// 20 layers × (weight [64, 256] fp32, bias [256] fp32): 40 chunks, all distinct.
std::map<std::string, Tensor> make_model(uint64_t seed) {
  Generator gen(seed);
  std::map<std::string, Tensor> m;
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    m[p + "weight"] = Tensor::uniform({64, 256}, -1, 1, gen);
    m[p + "bias"] = Tensor::uniform({256}, -1, 1, gen);
  }
  return m;
}

// Fine-tunes the given layers: every element of their weight and bias moves.
void fine_tune(std::map<std::string, Tensor>& m, const std::set<int>& layers, double by) {
  for (int l : layers) {
    for (const char* what : {"weight", "bias"}) {
      Tensor& t = m["layers." + std::to_string(l) + "." + what];
      t = t.to(DType::kFloat64);
      Tensor moved = Tensor::full(t.sizes(), by, DType::kFloat64);
      double* a = t.data<double>();
      const double* b = moved.data<double>();
      for (int64_t i = 0; i < t.numel(); ++i) a[i] += b[i];
      t = t.to(DType::kFloat32);
    }
  }
}

StateDict state_of(const std::map<std::string, Tensor>& m, int64_t step) {
  StateDict sd;
  for (const auto& [k, t] : m) sd.set(k, t);
  sd.set("step", StateValue(step));
  return sd;
}

uint64_t data_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() != "dcpp.metadata") n += e.file_size();
  }
  return n;
}

void expect_step_holds(CheckpointManager& manager, int64_t step, const std::map<std::string, Tensor>& m) {
  StateDict target;
  for (const auto& [k, t] : m) target.set(k, Tensor::full(t.sizes(), -7.0, t.dtype()));
  target.set("step", StateValue(int64_t{-1}));
  manager.load(step, target);
  for (const auto& [k, t] : m) EXPECT_TRUE(equal(target.at(k).as<Tensor>(), t)) << k << " at step " << step;
  EXPECT_EQ(target.at("step").as<int64_t>(), step);
  VerifyReport report = verify_checkpoint(manager.step_path(step));
  EXPECT_TRUE(report.ok()) << "verify of step " << step << " found " << report.problems.size() << " problems"
                           << (report.problems.empty() ? "" : ": " + report.problems[0].message);
}

std::set<int64_t> complete_steps(CheckpointManager& m) {
  std::set<int64_t> out;
  for (const StepInfo& s : m.list_steps()) {
    if (s.complete()) out.insert(s.step);
  }
  return out;
}

TEST(tools_Incremental, FineTuningTwoOfTwentyLayersWritesOnlyThem) {
  const uint64_t seed = test_seed("Incremental.FineTuning");
  TempDir tmp;
  CheckpointManagerOptions options;
  options.incremental = true;
  options.retention.keep_last = 1;
  CheckpointManager manager(tmp.path() + "/run", options);

  std::map<std::string, Tensor> model = make_model(seed);
  manager.save(1, state_of(model, 1));
  const uint64_t full = data_bytes(manager.step_path(1));
  ASSERT_GT(full, uint64_t{kLayers} * 64 * 256 * 4);

  // 2 of 20 layers (10% of the chunks) change.
  fine_tune(model, {3, 17}, 0.5);
  manager.save(2, state_of(model, 2));
  const uint64_t incremental = data_bytes(manager.step_path(2));
  std::printf("full save %llu bytes, incremental save with 2 of 20 layers changed %llu bytes (%.3fx)\n",
              static_cast<unsigned long long>(full), static_cast<unsigned long long>(incremental),
              static_cast<double>(incremental) / static_cast<double>(full));
  EXPECT_LE(incremental * 100, full * 15);
  EXPECT_GE(incremental * 100, full * 9);  // the changed layers were written
  // keep_last = 1, but step 2 refers to step 1.
  EXPECT_EQ(complete_steps(manager), (std::set<int64_t>{1, 2}));
  expect_step_holds(manager, 2, model);

  // Step 3 changes another layer: it refers to step 1 and to step 2 (never a
  // chain through step 2).
  fine_tune(model, {5}, -0.25);
  manager.save(3, state_of(model, 3));
  EXPECT_EQ(complete_steps(manager), (std::set<int64_t>{1, 2, 3}));
  Metadata md = read_fs_metadata(*default_file_system(), manager.step_path(3));
  std::set<std::string> files;
  for (const auto& [k, t] : md.tensors) files.insert(t.chunks[0].location.file);
  EXPECT_TRUE(files.count("../step-000001/data-00000.bin"));
  EXPECT_TRUE(files.count("../step-000002/data-00000.bin"));
  EXPECT_TRUE(files.count("data-00000.bin"));
  EXPECT_EQ(md.format_version, 2u);
  expect_step_holds(manager, 3, model);

  // Saving step 1 again would replace files steps 2 and 3 read: refused.
  EXPECT_THROW(
      {
        try {
          manager.save(1, state_of(model, 1));
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
          EXPECT_NE(e.message().find("refers to its data files"), std::string::npos) << e.message();
          throw;
        }
      },
      Error);
  expect_step_holds(manager, 3, model);

  // Everything changes: step 4 stands alone, and retention removes the rest.
  std::set<int> all;
  for (int l = 0; l < kLayers; ++l) all.insert(l);
  fine_tune(model, all, 1.0);
  manager.save(4, state_of(model, 4));
  EXPECT_EQ(complete_steps(manager), (std::set<int64_t>{4}));
  expect_step_holds(manager, 4, model);
}

TEST(tools_Incremental, ShardedRunsOnThreeAndFiveRanks) {
  const uint64_t seed = test_seed("Incremental.Sharded");
  for (int world : {3, 5}) {
    TempDir tmp;
    const std::string root = tmp.path() + "/run";
    std::map<std::string, Tensor> model = make_model(seed + static_cast<uint64_t>(world));
    std::map<std::string, Tensor> tuned = model;
    fine_tune(tuned, {0, 9}, 0.125);
    run_ranks(world, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
      auto sharded = [&](const std::map<std::string, Tensor>& m, int64_t step) {
        StateDict sd;
        for (const auto& [k, t] : m) sd.set(k, distribute_tensor(t, mesh, {Shard{0}}));
        sd.set("step", StateValue(step));
        return sd;
      };
      CheckpointManagerOptions options;
      options.incremental = true;
      options.compress = true;
      options.retention.keep_last = 1;
      options.comm = comm;
      CheckpointManager manager(root, options);
      manager.save(10, sharded(model, 10));
      manager.save(20, sharded(tuned, 20));
      StateDict target;
      for (const auto& [k, t] : tuned) {
        target.set(k, distribute_tensor(Tensor::full(t.sizes(), -7.0, t.dtype()), mesh, {Shard{0}}));
      }
      target.set("step", StateValue(int64_t{-1}));
      manager.load(20, target);
      for (const auto& [k, t] : tuned) {
        EXPECT_TRUE(equal(target.at(k).as<DTensor>().full_tensor(), t)) << k << " on " << world << " ranks";
      }
    });
    CheckpointManager reader(root);
    EXPECT_EQ(complete_steps(reader), (std::set<int64_t>{10, 20})) << world << " ranks";
    const uint64_t full = data_bytes(reader.step_path(10)), inc = data_bytes(reader.step_path(20));
    EXPECT_LE(inc * 100, full * 15) << world << " ranks: " << inc << " of " << full;
    EXPECT_TRUE(verify_checkpoint(reader.step_path(20)).ok()) << world << " ranks";
  }
}

}  // namespace
}  // namespace dcpp::testing
