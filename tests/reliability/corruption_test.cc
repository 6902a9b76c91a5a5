// Corruption of a saved checkpoint: Single-byte flips at
// sampled offsets of every data file and of the metadata, and truncations to
// sampled lengths. Each load (collective on 4 ranks, whole-key reads and a
// box read through CheckpointReader) must either fail with a dcpp::Error that
// names the file or the key, or return data byte-identical to what was saved
// (a flip in alignment padding, or in a block that a load does not read, is
// harmless). Never silently different data, never a crash.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "reliability/reliability_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

constexpr int kWorld = 4;
constexpr uint64_t kBlock = 4096;  // several checksum blocks per chunk

// The seed model plus a larger sharded tensor and two plain values, so that
// data files have several blocks, alignment padding and value items.
struct Saved {
  std::map<std::string, Tensor> full;  // every tensor key, whole
  int64_t step = 1234567;
  std::string name = "reliability-corruption";
};

const Saved& saved() {
  static const Saved s = [] {
    Saved s;
    for (const auto& key : seed_states().keys) s.full.emplace(key, seed_states().old_full.at(key));
    Generator gen(77);
    s.full.emplace("extra.big", Tensor::uniform({96, 100}, -3, 3, gen));
    return s;
  }();
  return s;
}

// This rank's state dict: the seed model's old generation plus the extras;
// `sentinel`: every tensor filled with 12345 instead (a load target).
StateDict build(const CommPtr& comm, bool sentinel) {
  StateDict sd = seed_state_dict(comm, Generation::kOld);
  DeviceMesh mesh = init_device_mesh(comm, "cpu", {comm->size()});
  const Tensor& big = saved().full.at("extra.big");
  LocalChunk lc = compute_local_shape_and_global_offset(big.shape(), mesh.shape(), mesh.coordinate(), {Shard{0}});
  sd.set("extra.big", DTensor(box_of(big, lc.global_offset, lc.local_shape).clone(), mesh, {Shard{0}}, big.shape()));
  if (sentinel) {
    for (auto& [key, value] : sd) {
      Tensor local = value.as<DTensor>().to_local();
      local.copy_from(Tensor::full(local.shape(), 12345.0));
    }
    sd.set("step", int64_t{0});
    sd.set("name", std::string("sentinel"));
  } else {
    sd.set("step", saved().step);
    sd.set("name", saved().name);
  }
  return sd;
}

bool names_file_or_key(const std::string& message, const std::string& file) {
  if (message.find(file) != std::string::npos) return true;
  for (const auto& [key, t] : saved().full) {
    if (message.find(key) != std::string::npos) return true;
  }
  return message.find("'step'") != std::string::npos || message.find("'name'") != std::string::npos;
}

enum class Verdict { kDetected, kIdentical, kBad };

struct Tally {
  int tried = 0, detected = 0, identical = 0, bad = 0;
};

// Loads the corrupted checkpoint every way and judges the outcome.
Verdict judge(const std::string& path, const std::string& file, std::string& why) {
  // 1. Collective load on kWorld ranks into sentinel-filled shards.
  std::mutex mutex;
  std::vector<std::string> errors(kWorld);
  std::vector<bool> threw(kWorld, false);
  bool mismatch = false;
  run_ranks(kWorld, [&](CommPtr comm) {
    StateDict target = build(comm, /*sentinel=*/true);
    StateDict expected = build(comm, /*sentinel=*/false);
    try {
      load(target, path, LoadOptions{.comm = comm});
    } catch (const Error& e) {
      std::lock_guard lock(mutex);
      threw[comm->rank()] = true;
      errors[comm->rank()] = e.what();
      return;
    }
    std::lock_guard lock(mutex);
    for (const auto& [key, value] : expected) {
      const StateValue& got = target.at(key);
      bool same = value.is_dtensor() ? same_bytes(got.as<DTensor>().to_local(), value.as<DTensor>().to_local())
                  : key == "step"    ? got.as<int64_t>() == saved().step
                                     : got.as<std::string>() == saved().name;
      if (!same) {
        mismatch = true;
        why += "load() returned different data for " + key + " on rank " + std::to_string(comm->rank()) + "; ";
      }
    }
  });
  const int n_threw = static_cast<int>(std::count(threw.begin(), threw.end(), true));
  if (n_threw != 0 && n_threw != kWorld) {
    why += std::to_string(n_threw) + " of " + std::to_string(kWorld) + " ranks failed; ";
    return Verdict::kBad;
  }
  if (mismatch) return Verdict::kBad;
  bool detected = n_threw == kWorld;
  if (detected && !names_file_or_key(errors[0], file)) {
    why += "the load error names neither the file nor a key: " + errors[0];
    return Verdict::kBad;
  }

  // 2. CheckpointReader: every key whole, the values, and one box.
  bool reader_detected = false;
  try {
    CheckpointReader reader = open_checkpoint(path);
    for (const auto& [key, full] : saved().full) {
      if (!same_bytes(reader.read(key), full)) {
        why += "CheckpointReader::read returned different data for " + key + "; ";
        return Verdict::kBad;
      }
    }
    if (reader.value("step").as<int64_t>() != saved().step || reader.value("name").as<std::string>() != saved().name) {
      why += "CheckpointReader::value returned a different value; ";
      return Verdict::kBad;
    }
  } catch (const Error& e) {
    reader_detected = true;
    if (!names_file_or_key(e.what(), file)) {
      why += std::string("the CheckpointReader error names neither the file nor a key: ") + e.what();
      return Verdict::kBad;
    }
  }
  // A partial read touches only some blocks: it may succeed where a whole
  // read fails, but only with the right bytes.
  try {
    CheckpointReader reader = open_checkpoint(path);
    Tensor box = reader.read("extra.big", {5, 10}, {20, 30});
    if (!same_bytes(box, box_of(saved().full.at("extra.big"), {5, 10}, {20, 30}))) {
      why += "a box read returned different data; ";
      return Verdict::kBad;
    }
  } catch (const Error& e) {
    if (!names_file_or_key(e.what(), file)) {
      why += std::string("the box read error names neither the file nor a key: ") + e.what();
      return Verdict::kBad;
    }
  }
  // load() reads every byte CheckpointReader's whole reads do.
  if (detected != reader_detected) {
    why += std::string("load() ") + (detected ? "failed" : "succeeded") + " but the whole reads " +
           (reader_detected ? "failed" : "succeeded") + (detected ? ": " + errors[0] : "");
    return Verdict::kBad;
  }
  return detected ? Verdict::kDetected : Verdict::kIdentical;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> bytes(std::filesystem::file_size(path));
  FILE* f = std::fopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  if (!f) return {};
  EXPECT_EQ(std::fread(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  return bytes;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!bytes.empty()) ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

// Sampled offsets: the first and last 16 bytes, every 4096-byte boundary
// neighbourhood, and `random` more from the seed.
std::vector<uint64_t> sample_offsets(uint64_t size, size_t random, std::mt19937_64& rng) {
  std::set<uint64_t> at;
  for (uint64_t i = 0; i < std::min<uint64_t>(16, size); ++i) {
    at.insert(i);
    at.insert(size - 1 - i);
  }
  for (uint64_t b = kBlock; b < size; b += kBlock) {
    at.insert(b - 1);
    at.insert(b);
  }
  for (size_t i = 0; i < random && size > 0; ++i) at.insert(rng() % size);
  return {at.begin(), at.end()};
}

// `compress`: the checkpoint stores encoded blocks (format version 2), so
// flips land in zstd frames and group tables as well.
void corruption_case(const std::string& name, bool compress) {
  const uint64_t seed = test_seed(name);
  std::mt19937_64 rng(seed);
  TempDir tmp;
  const std::string path = tmp.path() + "/ckpt";
  run_ranks(kWorld, [&](CommPtr comm) {
    StateDict sd = build(comm, false);
    FileSystemWriterOptions options;
    options.block_size = kBlock;
    options.compress = compress;
    FileSystemWriter writer(path, options);
    save(sd, writer, SaveOptions{.comm = comm});
  });
  {
    std::string why;
    ASSERT_EQ(judge(path, "", why), Verdict::kIdentical) << "the pristine checkpoint: " << why;
  }
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(path)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), static_cast<size_t>(kWorld) + 1) << "data files of every rank and the metadata";

  Tally flips, cuts;
  for (const auto& file : files) {
    const std::string fpath = path + "/" + file;
    const std::vector<uint8_t> pristine = read_file(fpath);
    const bool is_metadata = file == std::string(kMetadataFileName);
    Tally file_flips, file_cuts;
    for (uint64_t off : sample_offsets(pristine.size(), is_metadata ? 48 : 24, rng)) {
      const uint8_t mask = static_cast<uint8_t>(1u << (rng() % 8));
      std::vector<uint8_t> bytes = pristine;
      bytes[off] ^= mask;
      write_file(fpath, bytes);
      std::string why;
      Verdict v = judge(path, file, why);
      ++file_flips.tried;
      if (v == Verdict::kDetected) ++file_flips.detected;
      if (v == Verdict::kIdentical) ++file_flips.identical;
      if (v == Verdict::kBad) {
        ++file_flips.bad;
        ADD_FAILURE() << file << ": flip of bit mask 0x" << std::hex << int(mask) << std::dec << " at offset " << off
                      << ": " << why;
      }
    }
    std::set<uint64_t> lengths = {0, 1, pristine.size() - 1, pristine.size() / 2};
    if (pristine.size() > 8) lengths.insert(pristine.size() - 8);
    for (uint64_t b = kBlock; b < pristine.size(); b += kBlock) lengths.insert(b);
    for (int i = 0; i < 4; ++i) lengths.insert(rng() % pristine.size());
    for (uint64_t len : lengths) {
      write_file(fpath, std::vector<uint8_t>(pristine.begin(), pristine.begin() + static_cast<int64_t>(len)));
      std::string why;
      Verdict v = judge(path, file, why);
      ++file_cuts.tried;
      if (v == Verdict::kDetected) ++file_cuts.detected;
      if (v == Verdict::kIdentical) ++file_cuts.identical;
      if (v == Verdict::kBad) {
        ++file_cuts.bad;
        ADD_FAILURE() << file << ": truncated to " << len << " of " << pristine.size() << " bytes: " << why;
      }
    }
    write_file(fpath, pristine);
    std::printf("[corruption] %s (%zu bytes): %d flips (%d detected, %d harmless), %d truncations (%d detected, "
                "%d harmless), wrong data %d\n",
                file.c_str(), pristine.size(), file_flips.tried, file_flips.detected, file_flips.identical,
                file_cuts.tried, file_cuts.detected, file_cuts.identical, file_flips.bad + file_cuts.bad);
    for (auto [from, to] : {std::pair{&file_flips, &flips}, std::pair{&file_cuts, &cuts}}) {
      to->tried += from->tried;
      to->detected += from->detected;
      to->identical += from->identical;
      to->bad += from->bad;
    }
  }
  std::printf("[corruption] total: %d corruptions tried (%d flips, %d truncations): %d detected with an error naming "
              "the file or key, %d harmless (byte-identical data), %d wrong data or unclear errors\n",
              flips.tried + cuts.tried, flips.tried, cuts.tried, flips.detected + cuts.detected,
              flips.identical + cuts.identical, flips.bad + cuts.bad);
  EXPECT_EQ(flips.bad + cuts.bad, 0);
  // Truncating the metadata or a data file must always be noticed.
  EXPECT_EQ(cuts.identical, 0);
  if (compress) {
    Metadata md = read_fs_metadata(*default_file_system(), path);
    size_t encoded = 0;
    for (const auto& [key, t] : md.tensors) {
      for (const auto& c : t.chunks) {
        for (const auto& b : c.location.stored_blocks) encoded += b.encoding == 1;
      }
    }
    EXPECT_GT(encoded, 0u) << "the compressed checkpoint should hold encoded blocks";
  }
}

TEST(reliability_Corruption, ByteFlipsAndTruncationsNeverReturnWrongData) {
  corruption_case("reliability_Corruption.ByteFlipsAndTruncationsNeverReturnWrongData", false);
}

TEST(reliability_Corruption, ByteFlipsAndTruncationsNeverReturnWrongDataCompressed) {
  corruption_case("reliability_Corruption.ByteFlipsAndTruncationsNeverReturnWrongDataCompressed", true);
}

}  // namespace
}  // namespace dcpp::testing
