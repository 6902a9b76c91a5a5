// Train a tensor-parallel MLP on 4 ranks, checkpoint it, and load the
// checkpoint back on 4, 2 and 3 ranks (PyTorch's test_tp_checkpoint, as a
// user would write it). Ranks are threads here; under mpirun the same code
// runs with mpi_world() instead of run_ranks.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/testing/models.h"
#include "dcpp/optim.h"
#include "dcpp/tp.h"

using namespace dcpp;

namespace {

std::atomic<bool> all_ok{true};
std::mutex mu;

void check(bool ok, const std::string& what) {
  if (!ok) {
    all_ok = false;
    std::lock_guard lock(mu);
    std::printf("  FAILED: %s\n", what.c_str());
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const ParallelizePlan kPlan = {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}};

// A fresh TP model on `comm`'s ranks, loaded from `dir`; checks every
// parameter against the full weights that were saved.
void load_and_verify(const CommPtr& comm, const std::string& dir, const std::map<std::string, Tensor>& saved) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kMeta);  // shapes only: load allocates
  parallelize_module(model, mesh, kPlan);
  StateDict sd = model.state_dict();
  auto t0 = std::chrono::steady_clock::now();
  load(sd, dir);
  model.load_state_dict(sd, /*strict=*/true, /*assign=*/true);
  double secs = seconds_since(t0);
  for (const auto& [name, param] : model.named_parameters()) {
    check(equal(param->dtensor().full_tensor(), saved.at(name)),
          name + " loaded on " + std::to_string(comm->size()) + " ranks");
  }
  if (comm->rank() == 0) {
    std::printf("loaded on %d ranks in %.3f s: every parameter matches\n", comm->size(), secs);
  }
}

}  // namespace

int main() {
  std::string dir = (std::filesystem::temp_directory_path() / "dcpp-demo-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) return 2;
  dir += "/ckpt";
  std::map<std::string, Tensor> saved;  // full weights at save time

  try {
    run_ranks(4, [&](CommPtr comm) {
      // Train a few SGD steps.
      DeviceMesh mesh = init_device_mesh(comm, "cpu", {4});
      MLPModule model(Device::kCpu);
      parallelize_module(model, mesh, kPlan);
      SGD optimizer(model, SGDOptions{.lr = 0.25});
      manual_seed(0);
      for (int step = 0; step < 3; ++step) {
        optimizer.zero_grad();
        Tensor out = model(Tensor::uniform({20, 10}, 0, 1, default_generator()));
        model.backward(Tensor::full(out.shape(), 1.0));  // out.sum().backward()
        optimizer.step();
      }

      // Save: every rank writes its own shards.
      auto t0 = std::chrono::steady_clock::now();
      save(model.state_dict(), dir);
      double secs = seconds_since(t0);
      std::map<std::string, Tensor> full;
      for (const auto& [name, p] : model.named_parameters()) full[name] = p->dtensor().full_tensor();
      if (comm->rank() == 0) {
        saved = full;
        std::printf("saved a 4-rank TP MLPModule in %.3f s to %s:\n", secs, dir.c_str());
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
          std::printf("  %-16s %8ju bytes\n", f.filename().c_str(),
                      static_cast<uintmax_t>(std::filesystem::file_size(f)));
        }
      }

      // Change the weights, then load them back in place.
      for (const auto& p : model.parameters()) p->local().fill_(0.0);
      StateDict sd = model.state_dict();
      load(sd, dir);
      for (const auto& [name, p] : model.named_parameters()) {
        check(equal(p->dtensor().full_tensor(), full[name]), name + " reloaded on 4 ranks");
      }
      if (comm->rank() == 0) std::printf("changed the weights and loaded them back on 4 ranks: equal\n");
    });

    // Resharding: the same checkpoint on other world sizes.
    CheckpointReader reader = open_checkpoint(dir);
    std::printf("checkpoint: %zu tensors, %ju bytes of data, saved by %d ranks\n", reader.tensor_keys().size(),
                static_cast<uintmax_t>(reader.metadata().total_bytes()), reader.metadata().world_size);
    for (int world : {2, 3}) run_ranks(world, [&](CommPtr comm) { load_and_verify(comm, dir, saved); });
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    all_ok = false;
  }

  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path(), ec);
  std::printf(all_ok ? "all checks passed\n" : "SOME CHECKS FAILED\n");
  return all_ok ? 0 : 1;
}
