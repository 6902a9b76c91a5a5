// Fuzz target: PyTorch DCP's `.metadata` pickle as the DCP storage reader
// decodes it (TorchDcpReader::read_metadata over an in-memory directory).
#include "dcpp/torch_dcp_storage.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp;
  auto fs = std::make_shared<fuzz::MemoryFileSystem>();
  fs->add("/ckpt/.metadata", data, size);
  fuzz::parses([&] {
    TorchDcpReader reader("/ckpt", {.filesystem = fs});
    reader.set_up(0, 1, true);
    reader.read_metadata();
  });
  return 0;
}
