// `dcpp convert`: any supported checkpoint into the Hugging Face
// safetensors layout, PyTorch DCP's layout or the native format, through the storage layer's
// streaming conversions (one tensor in memory at a time).
#include <cctype>
#include <cstdio>

#include "cli/cli.h"
#include "dcpp/inspect.h"
#include "dcpp/io.h"
#include "dcpp/safetensors_storage.h"

namespace dcpp::cli {

std::optional<uint64_t> parse_size(const std::string& text) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (UINT64_MAX - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit;
  for (; i < text.size(); ++i) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  static const std::pair<const char*, uint64_t> kUnits[] = {
      {"", 1},          {"b", 1},
      {"kb", 1000ull},  {"mb", 1000ull * 1000},        {"gb", 1000ull * 1000 * 1000},
      {"tb", 1000ull * 1000 * 1000 * 1000},
      {"kib", 1ull << 10}, {"mib", 1ull << 20},        {"gib", 1ull << 30},
      {"tib", 1ull << 40},
  };
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (n > UINT64_MAX / factor) return std::nullopt;
    return n * factor;
  }
  return std::nullopt;
}

int run_convert(const ConvertArgs& args) {
  uint64_t max_shard = 0;
  if (!args.max_shard_size.empty()) {
    auto size = parse_size(args.max_shard_size);
    if (!size || *size == 0) {
      std::fprintf(stderr,
                   "dcpp convert: --max-shard-size %s is not a size: give a positive number of bytes, optionally "
                   "with a unit (B, KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024)\n",
                   args.max_shard_size.c_str());
      return kExitUsage;
    }
    max_shard = *size;
  }
  if (args.to != "safetensors" && (max_shard != 0 || args.torch_compatible)) {
    std::fprintf(stderr, "dcpp convert: --max-shard-size and --torch-compatible apply to --to safetensors only\n");
    return kExitUsage;
  }
  if (args.to != "dcpp" && args.compress) {
    std::fprintf(stderr, "dcpp convert: --compress applies to --to dcpp only\n");
    return kExitUsage;
  }
  Detection d = detect_checkpoint(args.src);
  if (d.kind != Detection::kFound) {
    std::fprintf(stderr, "dcpp convert: %s\n", d.message.c_str());
    return kExitNotCheckpoint;
  }
  if (!d.complete) {
    std::fprintf(stderr, "dcpp convert: %s is an incomplete checkpoint: %s\n", d.path.c_str(), d.message.c_str());
    return kExitProblems;
  }
  std::string dst = args.dst;
  while (dst.size() > 1 && dst.back() == '/') dst.pop_back();
  if (args.to == "safetensors") {
    ConsolidateOptions options;
    options.max_shard_size = max_shard;
    options.torch_compatible = args.torch_compatible;
    consolidate_to_safetensors(d.path, dst, options);
  } else if (args.to == "torch-dcp") {
    convert_to_torch_dcp(d.path, dst);
  } else {
    FileSystemWriterOptions options;
    options.compress = args.compress;
    convert_to_dcpp(d.path, dst, options);
  }
  FileSystem& fs = *default_file_system();
  uint64_t files = 0, bytes = 0;
  for (const std::string& name : fs.list_dir(dst)) {
    const std::string p = dst + "/" + name;
    if (fs.file_type(p) != FileType::kRegular) continue;
    ++files;
    bytes += fs.file_size(p);
  }
  std::printf("converted %s (%s) to %s (%s): %llu file%s, %s\n", d.path.c_str(), d.format->name().c_str(),
              dst.c_str(), args.to.c_str(), static_cast<unsigned long long>(files), files == 1 ? "" : "s",
              human_bytes(bytes).c_str());
  return kExitOk;
}

}  // namespace dcpp::cli
