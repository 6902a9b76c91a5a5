// Saves a tensor sharded by rows over 3 thread ranks and loads it on 2 ranks
// sharded by columns, through the installed dcpp package only; checks every
// element against the tensor it started from and exits non-zero otherwise.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"

int main() {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("dcpp-consumer-" + std::to_string(::getpid()))).string();
  const dcpp::Tensor full = dcpp::Tensor::arange(7 * 5).view({7, 5});

  dcpp::run_ranks(3, [&](dcpp::CommPtr comm) {
    auto mesh = dcpp::init_device_mesh(comm, "cpu", {3});
    dcpp::StateDict sd;
    sd.set("weight", dcpp::distribute_tensor(full, mesh, {dcpp::Shard{0}}));
    sd.set("step", int64_t{42});
    dcpp::save(sd, path);
  });

  int bad = 0;
  dcpp::run_ranks(2, [&](dcpp::CommPtr comm) {
    auto mesh = dcpp::init_device_mesh(comm, "cpu", {2});
    dcpp::DTensor target = dcpp::distribute_tensor(dcpp::Tensor::full({7, 5}, -1.0), mesh, {dcpp::Shard{1}});
    dcpp::StateDict sd;
    sd.set("weight", target);
    dcpp::load(sd, path);
    if (!dcpp::equal(sd["weight"].dtensor().full_tensor(), full) && comm->rank() == 0) bad = 1;
  });

  dcpp::CheckpointReader reader = dcpp::open_checkpoint(path);
  const bool step_ok = reader.value("step").as<int64_t>() == 42;
  std::filesystem::remove_all(path);
  if (bad || !step_ok) {
    std::fprintf(stderr, "dcpp consumer: the loaded checkpoint differs from what was saved\n");
    return EXIT_FAILURE;
  }
  std::printf("dcpp consumer: saved on 3 ranks (Shard(0)), loaded on 2 (Shard(1)): all 35 values and 'step' match\n");
  return EXIT_SUCCESS;
}
