// Fuzz target: torch.save archives as DCP stores them per item: the ZIP
// reader, the data.pkl interpretation of a tensor archive and of a value
// archive (src/storage/torch_dcp/torch_save.h), over one in-memory file.
#include "fuzz_support.h"
#include "storage/torch_dcp/torch_save.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dcpp;
  fuzz::MemoryFileSystem fs;
  fs.add("/item.distcp", data, size);
  std::unique_ptr<RandomAccessFile> file = fs.open_read("/item.distcp");
  fuzz::parses([&] { torch_dcp::parse_tensor_archive(*file, 0, size, "fuzz item"); });
  fuzz::parses([&] { torch_dcp::parse_value_archive(*file, 0, size, 1 << 20, "fuzz item"); });
  fuzz::parses([&] {
    torch_dcp::ZipReader zip(*file, 0, size, "fuzz zip");
    for (const auto& entry : zip.entries()) zip.read_all(entry, 1 << 20);
  });
  return 0;
}
