// A rank process killed for real under mpirun (rank failure, MPI), run by
// rank_kill_mpi_test.sh. Modes:
//   save <path> <victim>: every rank saves the seed's model (old generation)
//       to <path>; then all save the new generation, and the victim rank
//       SIGKILLs itself at its first data write.
//   load <path> <victim>: every rank loads <path>; the victim SIGKILLs
//       itself at its first read of a data file.
//   check <path> (no mpirun): <path> must hold the old generation, byte for
//       byte, as computed by an MLPModule on one rank without parallelism.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "dcpp/checkpoint.h"
#include "dcpp/comm.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/forwarding_file_system.h"
#include "dcpp/testing/models.h"
#include "dcpp/tp.h"

namespace {

using namespace dcpp;

// Dies (SIGKILL, no clean-up of any kind) at the first pwrite or pread of a data file.
class KillingFileSystem final : public ForwardingFileSystem {
 public:
  std::unique_ptr<RandomAccessFile> open_read(const std::string& p, const OpenReadOptions& o = {}) override {
    return std::make_unique<ReadFile>(ForwardingFileSystem::open_read(p, o));
  }
  std::unique_ptr<WritableFile> open_write(const std::string& p, const OpenWriteOptions& o = {}) override {
    return std::make_unique<WriteFile>(ForwardingFileSystem::open_write(p, o));
  }

 private:
  static void maybe_die(const std::string& path) {
    if (path.find("data-") == std::string::npos) return;
    std::fprintf(stderr, "rank process %d: killing itself (SIGKILL) at its first I/O on %s\n", ::getpid(),
                 path.c_str());
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
  }
  class ReadFile final : public ForwardingRandomAccessFile {
   public:
    using ForwardingRandomAccessFile::ForwardingRandomAccessFile;
    size_t read(void* d, size_t n, uint64_t o) override {
      maybe_die(path());
      return ForwardingRandomAccessFile::read(d, n, o);
    }
  };
  class WriteFile final : public ForwardingWritableFile {
   public:
    using ForwardingWritableFile::ForwardingWritableFile;
    size_t write(const void* d, size_t n, uint64_t o) override {
      maybe_die(path());
      return ForwardingWritableFile::write(d, n, o);
    }
  };
};

StateDict seed_model_state(const CommPtr& comm, bool new_generation) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kCpu);
  parallelize_module(model, mesh, {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}});
  StateDict sd = model.state_dict().clone();
  if (new_generation) {
    for (auto& [key, value] : sd) {
      Tensor local = value.as<DTensor>().to_local();
      float* p = local.data<float>();
      for (int64_t i = 0; i < local.numel(); ++i) p[i] = p[i] * -1.5f + 0.25f;
    }
  }
  return sd;
}

int check(const std::string& path) {
  MLPModule reference(Device::kCpu);
  CheckpointReader reader = open_checkpoint(path);
  int bad = 0;
  for (const auto& [key, value] : reference.state_dict()) {
    Tensor want = value.as<Tensor>().contiguous();
    Tensor got = reader.read(key).contiguous();
    if (got.shape() != want.shape() || std::memcmp(got.data_ptr(), want.data_ptr(), want.nbytes()) != 0) {
      std::printf("check: %s differs from the old generation\n", key.c_str());
      ++bad;
    }
  }
  std::printf("check: %s holds the old generation: %s\n", path.c_str(), bad == 0 ? "yes" : "NO");
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s save|load <path> <victim> | check <path>\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const std::string path = argv[2];
  try {
    if (mode == "check") return check(path);
    const int victim = argc > 3 ? std::atoi(argv[3]) : 1;
    CommPtr world = mpi_world();
    world->set_timeout(std::chrono::seconds(20));
    auto fs = world->rank() == victim ? FileSystemPtr(std::make_shared<KillingFileSystem>()) : default_file_system();
    if (mode == "save") {
      {
        StateDict old_sd = seed_model_state(world, false);
        save(old_sd, path, SaveOptions{.comm = world});
      }
      world->barrier();
      StateDict sd = seed_model_state(world, true);
      FileSystemWriter writer(path, {.filesystem = fs});
      save(sd, writer, SaveOptions{.comm = world});
    } else {
      StateDict sd = seed_model_state(world, true);
      FileSystemReader reader(path, {.filesystem = fs});
      load(sd, reader, LoadOptions{.comm = world});
    }
    std::printf("rank %d: %s completed although rank %d was killed (unexpected)\n", world->rank(), mode.c_str(),
                victim);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank_kill_mpi: %s\n", e.what());
    return 1;
  }
}
