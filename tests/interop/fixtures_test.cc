// Readers against checkpoints written by real PyTorch (tests/data/interop and
// tests/data/interop-torch2.4, produced by scripts/interop/run_interop.py --fixtures; the torch version is
// in TORCH_VERSION there). Expected values are PyTorch's own dumps
// (manifest.json + raw little-endian .bin files), compared bit-exactly.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"
#include "interop/interop_support.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using interop_test::Expected;
using interop_test::read_expected;
using interop_test::data_dir;

void check_reader_whole(CheckpointReader& reader, const std::vector<Expected>& expected) {
  ASSERT_FALSE(expected.empty());
  for (const auto& e : expected) {
    SCOPED_TRACE(e.key);
    if (e.is_tensor) {
      ASSERT_TRUE(reader.is_tensor(e.key));
      Tensor got = reader.read(e.key);
      EXPECT_TRUE(equal(got, e.full)) << "max |diff| " << max_abs_diff(got, e.full);
    } else {
      StateValue v = reader.value(e.key);
      EXPECT_EQ(v.variant().index(), e.value.variant().index());
      if (e.value.holds<int64_t>()) {
        EXPECT_EQ(v.as<int64_t>(), e.value.as<int64_t>());
      } else if (e.value.holds<double>()) {
        EXPECT_EQ(v.as<double>(), e.value.as<double>());
      } else if (e.value.holds<bool>()) {
        EXPECT_EQ(v.as<bool>(), e.value.as<bool>());
      } else if (e.value.holds<std::string>()) {
        EXPECT_EQ(v.as<std::string>(), e.value.as<std::string>());
      }
    }
  }
}

// Loads on `world` thread ranks into sentinel-filled Shard(0) DTensors and compares the gathered tensors.
void check_resharded_load(const std::function<std::unique_ptr<StorageReader>()>& make,
                          const std::vector<Expected>& expected, std::initializer_list<int> worlds) {
  testing::for_each_world_size(worlds, [&](CommPtr comm) {
    const int world = comm->size(), rank = comm->rank();
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd;
    for (const auto& e : expected) {
      if (!e.is_tensor) continue;
      Tensor sentinel = Tensor::full(e.full.shape(), -7.0, e.full.dtype());
      if (sentinel.dim() == 0) {
        sd.set(e.key, sentinel);
        continue;
      }
      ChunkExtent ext = shard_extent(sentinel.size(0), world, rank);
      Tensor local = sentinel.narrow(0, std::min(ext.offset, sentinel.size(0)), ext.length).clone();
      sd.set(e.key, DTensor(local, mesh, {Shard{0}}, sentinel.shape()));
    }
    auto reader = make();
    LoadOptions lo;
    lo.comm = comm;
    load(sd, *reader, lo);
    for (const auto& e : expected) {
      if (!e.is_tensor) continue;
      const StateValue& got = sd.at(e.key);
      Tensor full = got.is_dtensor() ? got.as<DTensor>().full_tensor() : got.as<Tensor>();
      EXPECT_TRUE(equal(full, e.full)) << e.key << " on rank " << rank << " of " << world;
    }
  });
}

// PyTorch DCP fixtures of the newest PyTorch checked (tests/data/interop)
// and of the oldest supported one (tests/data/interop-torch2.4).
const char* const kDcpFixtureDirs[] = {"", "-torch2.4"};

TEST(interop_TorchFixtures, VersionRecorded) {
  for (const char* suffix : kDcpFixtureDirs) {
    std::ifstream in(data_dir() + suffix + "/TORCH_VERSION");
    std::string line;
    ASSERT_TRUE(std::getline(in, line)) << data_dir() << suffix;
    EXPECT_EQ(line.rfind("torch ", 0), 0u) << line;
  }
  std::ifstream old(data_dir() + "-torch2.4/TORCH_VERSION");
  std::string line;
  ASSERT_TRUE(std::getline(old, line));
  EXPECT_EQ(line.rfind("torch 2.4.", 0), 0u) << line;
}

TEST(interop_TorchFixtures, DcpMlpTwoRanksReadWhole) {
  for (const char* suffix : kDcpFixtureDirs) {
    const std::string dir = data_dir() + suffix;
    SCOPED_TRACE(dir);
    auto expected = read_expected(dir + "/expected_mlp_ws2");
    CheckpointReader reader(std::make_unique<TorchDcpReader>(dir + "/dcp_mlp_ws2"));
    check_reader_whole(reader, expected);
    // Nesting comes from planner_data: optimizer state sits under optim → state → net1.weight.
    const auto& path = reader.metadata().paths.at("optim.state.net1.weight.exp_avg");
    ASSERT_EQ(path.size(), 4u);
    EXPECT_EQ(path[0].key, "optim");
    EXPECT_EQ(path[2].key, "net1.weight");
  }
}

TEST(interop_TorchFixtures, DcpUnevenFourRanksReshardedLoad) {
  for (const char* suffix : kDcpFixtureDirs) {
    const std::string dir = data_dir() + suffix;
    SCOPED_TRACE(dir);
    auto expected = read_expected(dir + "/expected_uneven_ws4");
    const std::string path = dir + "/dcp_uneven_ws4";
    check_resharded_load([&] { return std::make_unique<TorchDcpReader>(path); }, expected, {1, 2, 3, 5});
    CheckpointReader reader(std::make_unique<TorchDcpReader>(path));
    check_reader_whole(reader, expected);
  }
}

TEST(interop_TorchFixtures, HfShardedAndFullLayouts) {
  auto expected = read_expected(data_dir() + "/expected_model_uneven_ws2");
  for (const std::string layout : {"hfsharded_uneven_ws2", "hffull_uneven_ws2"}) {
    SCOPED_TRACE(layout);
    const std::string path = data_dir() + "/" + layout;
    CheckpointReader reader(std::make_unique<SafetensorsReader>(path));
    check_reader_whole(reader, expected);
    check_resharded_load([&] { return std::make_unique<SafetensorsReader>(path); }, expected, {3});
  }
}

TEST(interop_TorchFixtures, DetectFormats) {
  EXPECT_EQ(detect_checkpoint_format(data_dir() + "/dcp_mlp_ws2"), CheckpointFormat::kTorchDcp);
  EXPECT_EQ(detect_checkpoint_format(data_dir() + "/hffull_uneven_ws2"), CheckpointFormat::kSafetensors);
  EXPECT_EQ(detect_checkpoint_format(data_dir() + "/expected_mlp_ws2"), CheckpointFormat::kUnknown);
  EXPECT_THROW(open_storage_reader(data_dir() + "/expected_mlp_ws2"), Error);
}

TEST(interop_TorchFixtures, ConsolidateDcpToSafetensorsAndConvertBack) {
  auto expected = read_expected(data_dir() + "/expected_uneven_ws4");
  testing::TempDir tmp;
  const std::string hf = tmp.path() + "/hf", native = tmp.path() + "/native", dcp2 = tmp.path() + "/dcp";
  ConsolidateOptions co;
  co.max_shard_size = 400;  // bytes: forces several files
  consolidate_to_safetensors(data_dir() + "/dcp_uneven_ws4", hf, co);
  auto fs = default_file_system();
  auto names = fs->list_dir(hf);
  size_t files = 0;
  for (const auto& n : names) files += n.rfind("model-", 0) == 0;
  EXPECT_GT(files, 2u);
  EXPECT_TRUE(fs->exists(hf + "/model.safetensors.index.json"));
  {
    CheckpointReader reader(std::make_unique<SafetensorsReader>(hf));
    check_reader_whole(reader, expected);
    for (const auto& [key, t] : reader.metadata().tensors) EXPECT_EQ(t.chunks.size(), 1u) << key;
  }
  convert_to_dcpp(hf, native);
  {
    CheckpointReader reader = open_checkpoint(native);
    check_reader_whole(reader, expected);
  }
  // Native → PyTorch DCP layout (single rank save through the planners) → read back.
  {
    CheckpointReader src = open_checkpoint(native);
    StateDict sd;
    for (const auto& e : expected) {
      if (e.is_tensor) sd.set(e.key, src.read(e.key));
    }
    TorchDcpWriter writer(dcp2);
    save(sd, writer);
    CheckpointReader back(std::make_unique<TorchDcpReader>(dcp2));
    for (const auto& e : expected) {
      if (e.is_tensor) {
        EXPECT_TRUE(equal(back.read(e.key), e.full)) << e.key;
      }
    }
  }
}

}  // namespace
}  // namespace dcpp
