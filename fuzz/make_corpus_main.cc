// Writes the dcpp half of the fuzz seed corpora (fuzz/corpus/<target>/):
// native metadata, safetensors files (both layouts), torch.save item archives
// and DCP `.metadata` pickles, all from real saves of the seed's model and of
// a state dict with every value kind, on 1 to 4 thread ranks. The PyTorch
// half comes from make_torch_corpus.py. usage: fuzz_make_corpus <corpus dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "dcpp/checkpoint.h"
#include "dcpp/testing/models.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"
#include "dcpp/tp.h"
#include "storage/torch_dcp/pickle.h"

namespace fs = std::filesystem;
using namespace dcpp;

namespace {

StateDict state(const CommPtr& comm, bool values) {
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  MLPModule model(Device::kCpu);
  parallelize_module(model, mesh, {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}});
  StateDict sd{{"model", model.state_dict()}};
  if (values) {
    sd.set("step", int64_t{42});
    sd.set("lr", 0.125);
    sd.set("done", true);
    sd.set("name", std::string("seed"));
    sd.set("blob", Bytes{std::byte{0}, std::byte{255}, std::byte{7}});
    StateList list{StateValue(int64_t{1}), StateValue(std::string("two"))};
    sd.set("list", list);
    sd.set("half", Tensor::full({3, 5}, 1.5, DType::kFloat16));
    sd.set("bf", Tensor::full({4}, -2.0, DType::kBFloat16));
    sd.set("ints", Tensor::arange(6, DType::kInt64));
  }
  return sd;
}

void copy_seed(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  std::printf("%s\n", to.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = fs::temp_directory_path() / ("dcpp-corpus-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  for (int world = 1; world <= 4; ++world) {
    for (bool values : {false, true}) {
      const std::string tag = "w" + std::to_string(world) + (values ? "-values" : "");
      const fs::path native = tmp / ("native-" + tag);
      const fs::path full = tmp / ("st-full-" + tag);
      const fs::path sharded = tmp / ("st-sharded-" + tag);
      const fs::path dcp = tmp / ("dcp-" + tag);
      run_ranks(world, [&](CommPtr comm) {
        StateDict sd = state(comm, values);
        save(sd, native.string(), SaveOptions{.comm = comm});
        {
          SafetensorsWriter w(full.string(), {.layout = SafetensorsLayout::kFull});
          save(sd, w, SaveOptions{.comm = comm});
        }
        {
          SafetensorsWriter w(sharded.string(), {.layout = SafetensorsLayout::kSharded});
          save(sd, w, SaveOptions{.comm = comm});
        }
        TorchDcpWriter w(dcp.string());
        save(sd, w, SaveOptions{.comm = comm});
      });
      copy_seed(native / std::string(kMetadataFileName), out / "native_metadata" / ("dcpp-" + tag));
      for (const auto* dir : {&full, &sharded}) {
        for (const auto& e : fs::directory_iterator(*dir)) {
          if (e.path().extension() == ".safetensors") {
            copy_seed(e.path(), out / "safetensors_header" /
                                    ("dcpp-" + dir->filename().string() + "-" + e.path().filename().string()));
          }
        }
      }
      copy_seed(dcp / ".metadata", out / "torch_dcp_metadata" / ("dcpp-" + tag));
      copy_seed(dcp / ".metadata", out / "pickle" / ("dcpp-dcp-metadata-" + tag));
      // Each item of a .distcp file is one torch.save archive; the whole
      // file (the archives back to back) seeds the archive target too.
      for (const auto& e : fs::directory_iterator(dcp)) {
        if (e.path().extension() == ".distcp" && world <= 2) {
          copy_seed(e.path(), out / "torch_save" / ("dcpp-" + tag + "-" + e.path().filename().string()));
        }
      }
    }
  }
  fs::remove_all(tmp);
  return 0;
}
