// Checkpoints on an S3-compatible server (moto on the loopback): save/load
// and open_checkpoint by s3:// path (the environment names the endpoint and
// keys), the commit without rename (per-save object names, the old
// checkpoint's objects removed after the new metadata commits, a failed
// save leaving the old one loadable byte for byte), leftovers of a crashed
// save found and removed by CheckpointManager::cleanup. Expected values are
// the random tensors saved, compared byte for byte.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "dcpp/checkpoint.h"
#include "dcpp/checkpoint_manager.h"
#include "dcpp/error.h"
#include "s3/s3_env.h"
#include "storage/fs/object_commit.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

// The api layer picks the S3 file system for s3:// paths from the environment.
void point_environment_at_server() {
  setenv("AWS_ENDPOINT_URL", s3_test_server().endpoint.c_str(), 1);
  setenv("AWS_ACCESS_KEY_ID", "testing", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
  setenv("AWS_REGION", "us-east-1", 1);
}

std::string unique_prefix(const std::string& name) {
  static std::random_device rd;
  return std::string("s3://") + kS3TestBucket + "/ckpt-" + name + "-" + std::to_string(rd());
}

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::kFloat32);
  std::mt19937_64 rng(seed);
  auto* p = static_cast<float*>(t.data_ptr());
  for (int64_t i = 0; i < shape_numel(shape); ++i) p[i] = static_cast<float>(rng() % 100000) / 7.0f;
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.sizes() == b.sizes() && a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

std::vector<std::string> data_objects(FileSystem& fs, const std::string& path) {
  std::vector<std::string> out;
  for (const auto& n : fs.list_dir(path)) {
    if (fs_detail::is_data_file_name(n)) out.push_back(n);
  }
  return out;
}

TEST(S3Checkpoint, SaveLoadAndOpenByPath) {
  DCPP_REQUIRE_S3();
  point_environment_at_server();
  const uint64_t seed = test_seed("S3Checkpoint.SaveLoadAndOpenByPath");
  const std::string path = unique_prefix("bypath");
  // 7 MiB: a multipart upload of two parts, and a small one.
  const Tensor big = random_tensor({7, 256, 1024}, seed), small = random_tensor({3, 5}, seed + 1);
  StateDict sd{{"big", big}, {"small", small}, {"step", int64_t{42}}};
  save(sd, path);
  StateDict target{{"big", Tensor::zeros({7, 256, 1024}, DType::kFloat32)},
                   {"small", Tensor::zeros({3, 5}, DType::kFloat32)},
                   {"step", int64_t{0}}};
  load(target, path);
  EXPECT_TRUE(same_bytes(target.at("big").as<Tensor>(), big));
  EXPECT_TRUE(same_bytes(target.at("small").as<Tensor>(), small));
  EXPECT_EQ(target.at("step").as<int64_t>(), 42);
  CheckpointReader reader = open_checkpoint(path);
  Tensor box = reader.read("big", {2, 100, 0}, {1, 3, 1024});
  EXPECT_TRUE(same_bytes(box, big.narrow(0, 2, 1).narrow(1, 100, 3).contiguous()));
}

// A save on thread ranks, loaded on another number of ranks.
TEST(S3Checkpoint, ThreadRanksSaveAndReshardedLoad) {
  DCPP_REQUIRE_S3();
  point_environment_at_server();
  const uint64_t seed = test_seed("S3Checkpoint.ThreadRanks");
  const Tensor full = random_tensor({10, 33}, seed);
  for (int n : {3, 5}) {
    const std::string path = unique_prefix("ranks" + std::to_string(n));
    run_ranks(n, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
      StateDict sd{{"w", distribute_tensor(full, mesh, {Shard{0}})}};
      save(sd, path, SaveOptions{.comm = comm});
    });
    const int m = n == 3 ? 2 : 4;
    run_ranks(m, [&](CommPtr comm) {
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
      StateDict target{{"w", distribute_tensor(Tensor::zeros({10, 33}, DType::kFloat32), mesh, {Shard{1}})}};
      load(target, path, LoadOptions{.comm = comm});
      EXPECT_TRUE(same_bytes(target.at("w").as<DTensor>().full_tensor(), full)) << "saved on " << n << ", loaded on " << m;
    });
  }
}

TEST(S3Checkpoint, OverwriteCommitsByMetadataAndRemovesTheOldObjects) {
  DCPP_REQUIRE_S3();
  auto fs = s3_test_file_system();
  const uint64_t seed = test_seed("S3Checkpoint.Overwrite");
  const std::string path = unique_prefix("overwrite");
  FileSystemWriterOptions wopts;
  wopts.filesystem = fs;
  FileSystemReaderOptions ropts;
  ropts.filesystem = fs;
  const Tensor a = random_tensor({64, 64}, seed), b = random_tensor({64, 64}, seed + 1);
  {
    FileSystemWriter w(path, wopts);
    save(StateDict{{"w", a}}, w);
  }
  const auto first = data_objects(*fs, path);
  ASSERT_EQ(first.size(), 1u);
  {
    FileSystemWriter w(path, wopts);
    save(StateDict{{"w", b}}, w);
  }
  const auto second = data_objects(*fs, path);
  ASSERT_EQ(second.size(), 1u) << "the replaced checkpoint's object is removed after the commit";
  EXPECT_NE(first[0], second[0]) << "each save names its own objects";
  StateDict target{{"w", Tensor::zeros({64, 64}, DType::kFloat32)}};
  FileSystemReader r(path, ropts);
  load(target, r);
  EXPECT_TRUE(same_bytes(target.at("w").as<Tensor>(), b));
  // overwrite = false refuses before writing anything.
  wopts.overwrite = false;
  FileSystemWriter w(path, wopts);
  EXPECT_THROW(save(StateDict{{"w", a}}, w), Error);
  EXPECT_EQ(data_objects(*fs, path), second);
}

TEST(S3Checkpoint, CrashedSaveLeftoversAreListedAndCleanedUp) {
  DCPP_REQUIRE_S3();
  auto fs = s3_test_file_system();
  const uint64_t seed = test_seed("S3Checkpoint.Leftovers");
  const std::string root = unique_prefix("manager");
  CheckpointManagerOptions mopts;
  mopts.filesystem = fs;
  CheckpointManager manager(root, mopts);
  const Tensor a = random_tensor({16, 16}, seed);
  manager.save(100, StateDict{{"w", a}});
  const std::string step = manager.step_path(100);
  // What a save that crashed before its commit leaves: a data object the metadata does not name.
  const std::string stray = fs_detail::per_save_data_file_name(0, 0x0123456789abcdefULL);
  {
    auto out = fs->open_write(step + "/" + stray);
    out->write_all("partial", 7, 0);
    out->close();
  }
  EXPECT_EQ(fs_detail::unreferenced_data_files(*fs, step), std::vector<std::string>{stray});
  StateDict target{{"w", Tensor::zeros({16, 16}, DType::kFloat32)}};
  EXPECT_EQ(manager.load_latest(target), std::optional<int64_t>(100));
  EXPECT_TRUE(same_bytes(target.at("w").as<Tensor>(), a));
  const CleanupReport report = manager.cleanup();
  EXPECT_EQ(report.removed, std::vector<std::string>{step + "/" + stray});
  EXPECT_TRUE(fs_detail::unreferenced_data_files(*fs, step).empty());
  target = StateDict{{"w", Tensor::zeros({16, 16}, DType::kFloat32)}};
  manager.load(100, target);
  EXPECT_TRUE(same_bytes(target.at("w").as<Tensor>(), a));
}

#ifdef DCPP_CLI_PATH
// The command's exit code and output.
std::pair<int, std::string> run_cli(const std::string& args) {
  FILE* p = popen((std::string(DCPP_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// dcpp inspect, verify and ls on s3:// paths, a crashed save's leftover listed.
TEST(S3Checkpoint, CommandOnS3Paths) {
  DCPP_REQUIRE_S3();
  point_environment_at_server();
  const std::string root = unique_prefix("cli");
  const Tensor a = random_tensor({40, 30}, 7);
  save(StateDict{{"w", a}, {"step", int64_t{5}}}, root + "/step-000005");
  auto [rc, out] = run_cli("inspect " + root + "/step-000005");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("[40, 30]"), std::string::npos) << out;
  std::tie(rc, out) = run_cli("verify " + root + "/step-000005");
  EXPECT_EQ(rc, 0) << out;
  auto fs = s3_test_file_system();
  const std::string stray = fs_detail::per_save_data_file_name(1, 0xfedcba9876543210ULL);
  {
    auto out = fs->open_write(root + "/step-000005/" + stray);
    out->write_all("x", 1, 0);
    out->close();
  }
  std::tie(rc, out) = run_cli("ls " + root);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("step-000005/" + stray), std::string::npos) << "lists the leftover: " << out;
  // verify reports an object the metadata does not name as a problem.
  std::tie(rc, out) = run_cli("verify " + root + "/step-000005");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find(stray), std::string::npos) << out;
  std::tie(rc, out) = run_cli("inspect " + root + "/step-000009");
  EXPECT_EQ(rc, 3) << out;
}
#endif

}  // namespace
}  // namespace dcpp::testing
