// PyTorch DCP's own layout (include/dcpp/torch_dcp_storage.h) in the
// conformance suite: every dcpp dtype, every value kind (pickled int, float,
// bool, str, bytes). Each item is a torch.save archive (a stored ZIP); the
// tensor's raw bytes are its "<prefix>/data/0" entry, found here by walking
// the local file headers (ZIP APPNOTE 4.3.7) without dcpp's own zip reader.
// The archive carries a CRC-32 of that entry, but the reader reads tensor
// boxes straight from the entry without checking it, so a flipped byte in a
// tensor's data is not detected; a truncated item is (its archive is cut).
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "conformance/backend.h"
#include "dcpp/torch_dcp_storage.h"

namespace dcpp::testing {
namespace {

uint64_t little_endian(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The "<prefix>/data/0" entry of the stored archive that is `item`.
void find_storage_entry(StoredItem& item) {
  std::ifstream in(item.path, std::ios::binary);
  std::vector<unsigned char> archive(item.item_length);
  in.seekg(static_cast<std::streamoff>(item.item_offset));
  in.read(reinterpret_cast<char*>(archive.data()), static_cast<std::streamsize>(archive.size()));
  if (!in) throw std::runtime_error("cannot read the archive of '" + item.key + "' in " + item.path);
  constexpr uint32_t kLocalHeader = 0x04034b50;
  for (uint64_t at = 0; at + 30 <= archive.size();) {
    const unsigned char* h = archive.data() + at;
    if (little_endian(h, 4) != kLocalHeader) break;  // the central directory
    const uint64_t size = little_endian(h + 18, 4);  // compressed = stored size
    const uint64_t name_length = little_endian(h + 26, 2), extra_length = little_endian(h + 28, 2);
    if (size == 0xffffffffu) throw std::runtime_error("zip64 entries are beyond this test's archive walk");
    const std::string name(reinterpret_cast<const char*>(h + 30), name_length);
    const uint64_t data = at + 30 + name_length + extra_length;
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, "/data/0") == 0) {
      item.data_offset = item.item_offset + data;
      item.data_length = size;
      return;
    }
    at = data + size;
  }
  throw std::runtime_error("no data/0 entry in the archive of '" + item.key + "' in " + item.path);
}

StorageBackend torch_dcp_backend() {
  StorageBackend b;
  b.name = "torch_dcp";
  b.caps.detects_corruption = false;
  b.caps.corruption_reason =
      "PyTorch DCP has no checksums dcpp verifies on tensor reads (the zip entry's CRC-32 is not checked when "
      "boxes are read from it): a flipped byte inside a tensor's data loads as a different value";
  b.make_writer = [](const std::string& path, const RankContext&, FileSystemPtr fs) {
    TorchDcpWriterOptions options;
    options.filesystem = std::move(fs);
    return std::make_unique<TorchDcpWriter>(path, options);
  };
  b.make_reader = [](const std::string& path, const RankContext&) { return std::make_unique<TorchDcpReader>(path); };
  b.find_tensor_bytes = find_storage_entry;
  return b;
}

DCPP_CONFORMANCE_BACKEND(torch_dcp_backend);

}  // namespace
}  // namespace dcpp::testing
