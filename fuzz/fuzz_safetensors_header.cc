// Fuzz target: the safetensors header parser and the safetensors storage
// reader's metadata (dtypes, shapes, offsets, __metadata__ with DCP sharding
// info and dcpp values), over one in-memory .safetensors file.
#include "dcpp/safetensors_storage.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp;
  auto fs = std::make_shared<fuzz::MemoryFileSystem>();
  fs->add("/ckpt/model-00001-of-00001.safetensors", data, size);
  fuzz::parses([&] { read_safetensors_header(*fs, "/ckpt/model-00001-of-00001.safetensors"); });
  fuzz::parses([&] {
    SafetensorsReader reader("/ckpt", {.filesystem = fs});
    reader.set_up(0, 1, true);
    reader.read_metadata();
  });
  return 0;
}
