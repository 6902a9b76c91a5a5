// The dcpp command on the foreign formats (safetensors in both Hugging Face
// layouts, PyTorch DCP) and `dcpp convert`, run as a real process. The
// PyTorch fixtures under tests/data/interop/ were written by PyTorch
// (scripts/interop/); their expected_* manifests list every key's dtype and
// shape as PyTorch saw them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"
#include "support/distributed.h"
#include "tools/tools_support.h"

namespace dcpp::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kOk = 0, kProblems = 1, kUsage = 2, kNotCheckpoint = 3;

std::string data_dir() {
  return (fs::path(__FILE__).parent_path().parent_path() / "data" / "interop").string();
}

struct Expected {
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> tensors;  // key → dtype, shape
  std::map<std::string, std::string> values;                                    // key → dcpp value kind
};

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

std::vector<int64_t> json_shape(simdjson::dom::element e) {
  std::vector<int64_t> s;
  for (simdjson::dom::element d : e.get_array()) s.push_back(int64_t(d));
  return s;
}

// The fixture's manifest.json, written by PyTorch's side of the interop
// scripts; Python value kinds map to dcpp's (int → int64, float → double).
Expected read_manifest(const std::string& dir) {
  static const std::map<std::string, std::string> kKinds = {
      {"int", "int64"}, {"float", "double"}, {"bool", "bool"}, {"str", "string"}, {"bytes", "bytes"}};
  Expected e;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(dir + "/manifest.json");
  for (simdjson::dom::element item : doc.get_array()) {
    const std::string key = str(item["key"]);
    const std::string kind = str(item["kind"]);
    if (kind == "tensor") {
      e.tensors[key] = {std::string(std::string_view(item["dtype"])), json_shape(item["shape"])};
    } else {
      e.values[key] = kKinds.at(kind);
    }
  }
  return e;
}

class tools_CliFormats : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return tmp_.path() + "/" + name; }
  CliResult run(const std::vector<std::string>& args) { return run_cli(args, tmp_.path()); }

  // `dcpp inspect --json` of `ckpt`, checked against `expected`; returns the
  // chunk count of every tensor.
  std::map<std::string, uint64_t> inspect_matches(const std::string& ckpt, const std::string& format,
                                                  const Expected& expected) {
    CliResult r = run({"inspect", ckpt, "--json"});
    EXPECT_EQ(r.code, kOk) << r.out << r.err;
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(simdjson::padded_string(r.out));
    EXPECT_EQ(std::string_view(doc["format"]), format);
    EXPECT_TRUE(bool(doc["complete"]));
    Expected got;
    std::map<std::string, uint64_t> chunks;
    for (simdjson::dom::element t : doc["tensors"].get_array()) {
      const std::string key = str(t["key"]);
      got.tensors[key] = {std::string(std::string_view(t["dtype"])), json_shape(t["shape"])};
      chunks[key] = uint64_t(t["chunks"]);
      for (simdjson::dom::element f : t["files"].get_array()) {
        EXPECT_TRUE(fs::exists(fs::path(ckpt) / std::string(std::string_view(f))) || fs::is_regular_file(ckpt))
            << key << " names " << std::string_view(f);
      }
    }
    for (simdjson::dom::element v : doc["values"].get_array()) {
      got.values[std::string(std::string_view(v["key"]))] = std::string(std::string_view(v["kind"]));
    }
    EXPECT_EQ(got.tensors, expected.tensors) << r.out;
    EXPECT_EQ(got.values, expected.values) << r.out;

    // The table says the same, with the format on the summary line.
    CliResult t = run({"inspect", ckpt});
    EXPECT_EQ(t.code, kOk) << t.out << t.err;
    EXPECT_TRUE(contains(t.out, "format       " + format)) << t.out;
    EXPECT_TRUE(contains(t.out, "no checksums in this format")) << t.out;
    for (const auto& [key, ds] : expected.tensors) {
      auto w = words(line_starting(t.out, key));
      EXPECT_GE(w.size(), 3u) << key << "\n" << t.out;
      if (w.size() >= 3) {
        EXPECT_EQ(w[1], ds.first) << key;
      }
    }
    return chunks;
  }

  void verify_ok(const std::string& ckpt, const std::string& format, uint64_t tensors, uint64_t values) {
    CliResult r = run({"verify", ckpt});
    EXPECT_EQ(r.code, kOk) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "(" + format + " checkpoint)")) << r.out;
    EXPECT_TRUE(contains(r.out, "OK: " + std::to_string(tensors) + " tensor")) << r.out;
    EXPECT_TRUE(contains(r.out, "no checksums in this format")) << r.out;
    CliResult j = run({"verify", ckpt, "--json"});
    EXPECT_EQ(j.code, kOk) << j.out << j.err;
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.parse(simdjson::padded_string(j.out));
    EXPECT_EQ(std::string_view(doc["format"]), format);
    EXPECT_TRUE(bool(doc["ok"]));
    EXPECT_FALSE(bool(doc["checksums"]));
    EXPECT_EQ(uint64_t(doc["tensors"]), tensors);
    EXPECT_EQ(uint64_t(doc["values"]), values);
    EXPECT_GT(uint64_t(doc["bytes_verified"]), 0u);
    EXPECT_EQ(doc["problems"].get_array().size(), 0u);
  }

  TempDir tmp_;
};

// ---- the PyTorch fixtures ----

TEST_F(tools_CliFormats, InspectAndVerifyPyTorchDcpCheckpoints) {
  for (const auto& [ckpt, manifest] : std::vector<std::pair<std::string, std::string>>{
           {"dcp_mlp_ws2", "expected_mlp_ws2"}, {"dcp_uneven_ws4", "expected_uneven_ws4"}}) {
    SCOPED_TRACE(ckpt);
    Expected expected = read_manifest(data_dir() + "/" + manifest);
    ASSERT_FALSE(expected.tensors.empty());
    // The manifest lists the scalar values only; torch.optim.Adam's param
    // group also holds betas (a tuple), foreach and fused (None) and params
    // (a list), which the DCP reader keeps as raw torch.save archives.
    for (const char* key : {"betas", "foreach", "fused", "params"}) {
      expected.values[std::string("optim.param_groups.0.") + key] = "bytes";
    }
    inspect_matches(data_dir() + "/" + ckpt, "torch-dcp", expected);
    verify_ok(data_dir() + "/" + ckpt, "torch-dcp", expected.tensors.size(), expected.values.size());
  }
  // The .metadata file stands for its checkpoint.
  CliResult r = run({"inspect", data_dir() + "/dcp_mlp_ws2/.metadata"});
  EXPECT_EQ(r.code, kOk) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "format       torch-dcp")) << r.out;
}

TEST_F(tools_CliFormats, InspectAndVerifySafetensorsInBothLayouts) {
  const Expected expected = read_manifest(data_dir() + "/expected_model_uneven_ws2");
  ASSERT_EQ(expected.tensors.size(), 6u);
  // Full layout: one whole tensor each.
  auto full = inspect_matches(data_dir() + "/hffull_uneven_ws2", "safetensors", expected);
  for (const auto& [key, n] : full) EXPECT_EQ(n, 1u) << key;
  verify_ok(data_dir() + "/hffull_uneven_ws2", "safetensors", 6, 0);
  // Sharded layout (headers of the two shard files): rank 0 holds no
  // net2.bias; net3 has one row, so rank 1's net3 chunks are empty (stored
  // as [0]-sized entries, which hold no bytes and are not counted); every
  // other key is split between the two ranks.
  auto sharded = inspect_matches(data_dir() + "/hfsharded_uneven_ws2", "safetensors", expected);
  const std::map<std::string, uint64_t> kShardedChunks = {{"net1.bias", 2},   {"net1.weight", 2}, {"net2.bias", 1},
                                                          {"net2.weight", 2}, {"net3.bias", 1},   {"net3.weight", 1}};
  EXPECT_EQ(sharded, kShardedChunks);
  verify_ok(data_dir() + "/hfsharded_uneven_ws2", "safetensors", 6, 0);

  CliResult r = run({"inspect", data_dir() + "/hffull_uneven_ws2", "--json"});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(simdjson::padded_string(r.out));
  EXPECT_EQ(std::string_view(doc["layout"]), "full");
  CliResult s = run({"inspect", data_dir() + "/hfsharded_uneven_ws2", "--json"});
  doc = parser.parse(simdjson::padded_string(s.out));
  EXPECT_EQ(std::string_view(doc["layout"]), "sharded");
  // One .safetensors file on its own is a checkpoint too.
  CliResult one = run({"inspect", data_dir() + "/hffull_uneven_ws2/model-00001-of-00001.safetensors"});
  EXPECT_EQ(one.code, kOk) << one.out << one.err;
  EXPECT_TRUE(contains(one.out, "keys         6 tensors, 0 values")) << one.out;
}

TEST_F(tools_CliFormats, VerifyReportsACorruptSafetensorsHeaderNamingTheFile) {
  const std::string ckpt = path("hf");
  fs::copy(data_dir() + "/hffull_uneven_ws2", ckpt);
  const std::string file = ckpt + "/model-00001-of-00001.safetensors";
  // Byte 8 is the '{' that opens the JSON header: the header no longer parses.
  {
    std::string bytes = slurp(file);
    ASSERT_EQ(bytes.at(8), '{');
  }
  flip_byte(file, 8);
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "problem: " + file + ": ")) << r.out;
  EXPECT_TRUE(contains(r.out, "FAILED: ")) << r.out;
  CliResult j = run({"verify", ckpt, "--json"});
  EXPECT_EQ(j.code, kProblems) << j.out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(simdjson::padded_string(j.out));
  ASSERT_GE(doc["problems"].get_array().size(), 1u);
  EXPECT_EQ(std::string_view(doc["problems"].at(0)["file"]), file);

  // A truncated data section: a tensor's bytes past the end of the file.
  const std::string ckpt2 = path("hf2");
  fs::copy(data_dir() + "/hffull_uneven_ws2", ckpt2);
  const std::string file2 = ckpt2 + "/model-00001-of-00001.safetensors";
  fs::resize_file(file2, fs::file_size(file2) - 4);
  CliResult t = run({"verify", ckpt2});
  EXPECT_EQ(t.code, kProblems) << t.out << t.err;
  EXPECT_TRUE(contains(t.out, "problem: " + file2)) << t.out;
}

// ---- convert ----

const std::map<std::string, std::pair<std::string, std::vector<int64_t>>> kTpTensors = {
    {"net1.weight", {"float32", {16, 10}}},
    {"net1.bias", {"float32", {16}}},
    {"net2.weight", {"float32", {10, 16}}},
    {"net2.bias", {"float32", {10}}},
};

TEST_F(tools_CliFormats, ConvertNativeToShardedSafetensorsAndBackIsByteExact) {
  const std::string native = path("native"), hf = path("hf"), back = path("back");
  write_tp_checkpoint(native);
  // 700 bytes per file: the 640-byte weights cannot share a file with each other.
  CliResult r = run({"convert", native, "--to", "safetensors", "--max-shard-size", "700B", hf});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "converted ")) << r.out;

  std::set<std::string> st_files;
  for (const auto& e : fs::directory_iterator(hf)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") st_files.insert(n);
  }
  EXPECT_GE(st_files.size(), 2u);
  simdjson::dom::parser parser;
  simdjson::dom::element index = parser.load(hf + "/model.safetensors.index.json");
  std::set<std::string> mapped_keys, mapped_files;
  for (auto field : index["weight_map"].get_object()) {
    mapped_keys.insert(std::string(field.key));
    mapped_files.insert(std::string(std::string_view(field.value)));
  }
  EXPECT_EQ(mapped_keys, (std::set<std::string>{"net1.weight", "net1.bias", "net2.weight", "net2.bias"}));
  EXPECT_EQ(mapped_files, st_files);
  EXPECT_EQ(uint64_t(index["metadata"]["total_size"]), 640u + 64 + 640 + 40);

  Expected expected;
  expected.tensors = kTpTensors;
  expected.values = {{"step", "int64"}, {"note", "string"}};
  inspect_matches(hf, "safetensors", expected);
  verify_ok(hf, "safetensors", 4, 2);

  CliResult b = run({"convert", hf, "--to", "dcpp", back});
  ASSERT_EQ(b.code, kOk) << b.out << b.err;
  CliResult v = run({"verify", back});
  EXPECT_EQ(v.code, kOk) << v.out << v.err;

  CheckpointReader original = open_checkpoint(native);
  CheckpointReader round_trip = open_checkpoint(back);
  EXPECT_EQ(round_trip.keys(), original.keys());
  for (const std::string& key : original.tensor_keys()) {
    Tensor a = original.read(key), c = round_trip.read(key);
    ASSERT_EQ(a.dtype(), c.dtype()) << key;
    ASSERT_EQ(a.shape(), c.shape()) << key;
    ASSERT_EQ(a.nbytes(), c.nbytes()) << key;
    a = a.contiguous();
    c = c.contiguous();
    EXPECT_EQ(std::memcmp(a.data_ptr(), c.data_ptr(), a.nbytes()), 0) << key;
  }
  EXPECT_EQ(std::get<int64_t>(round_trip.value("step").variant()), 7);
  EXPECT_EQ(std::get<std::string>(round_trip.value("note").variant()), "hello");
}

TEST_F(tools_CliFormats, ConvertPyTorchDcpToSafetensorsKeepsEveryTensor) {
  const std::string hf = path("hf");
  CliResult r = run({"convert", data_dir() + "/dcp_uneven_ws4", "--to", "safetensors", "--max-shard-size", "1KiB",
                     "--torch-compatible", hf});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  Expected expected = read_manifest(data_dir() + "/expected_uneven_ws4");
  for (const char* key : {"betas", "foreach", "fused", "params"}) {  // see InspectAndVerifyPyTorchDcpCheckpoints
    expected.values[std::string("optim.param_groups.0.") + key] = "bytes";
  }
  inspect_matches(hf, "safetensors", expected);
  // Every tensor equals the fixture's raw dump (written by PyTorch).
  CheckpointReader reader(open_storage_reader(hf));
  for (const auto& [key, ds] : expected.tensors) {
    const std::string dump = slurp(data_dir() + "/expected_uneven_ws4/" + key + ".bin");
    Tensor t = reader.read(key).contiguous();
    ASSERT_EQ(t.nbytes(), dump.size()) << key;
    EXPECT_EQ(std::memcmp(t.data_ptr(), dump.data(), dump.size()), 0) << key;
  }
}

// A state dict with every kind a conversion carries: fp32 DTensors sharded
// three ways (an MLPModule, TP=3), a bf16 tensor, and int, float, bool and
// string values. `original` receives each tensor whole (gathered before the
// save) and each value, as the saving side holds them.
struct OriginalState {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, StateValue> values;
};

OriginalState write_mixed_checkpoint(const std::string& dir) {
  OriginalState original;
  Generator gen(test_seed("CliFormats.MixedCheckpoint"));
  const Tensor bf16 = Tensor::uniform({5, 3}, -4, 4, gen).to(DType::kBFloat16);
  original.values = {{"step", StateValue(int64_t{7})},
                     {"lr", StateValue(0.125)},
                     {"flag", StateValue(true)},
                     {"note", StateValue(std::string("hello"))}};
  std::mutex mu;
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    MLPModule model(Device::kCpu);
    parallelize_module(model, mesh, {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}});
    StateDict sd = model.state_dict();
    sd.set("serving.bf16", StateValue(bf16));
    for (const auto& [k, v] : original.values) sd.set(k, v);
    std::map<std::string, Tensor> full;
    for (const auto& [name, p] : model.named_parameters()) full[name] = p->dtensor().full_tensor();
    save(sd, dir);
    if (comm->rank() == 0) {
      std::lock_guard lock(mu);
      original.tensors = full;
      original.tensors["serving.bf16"] = bf16;
    }
  });
  return original;
}

// Every tensor and value `reader` holds equals the original, byte for byte,
// and it holds nothing else.
void expect_same_state(CheckpointReader& reader, const OriginalState& original, const std::string& what) {
  std::set<std::string> want;
  for (const auto& [k, t] : original.tensors) want.insert(k);
  for (const auto& [k, v] : original.values) want.insert(k);
  const std::vector<std::string> keys = reader.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), want) << what;
  for (const auto& [key, expected] : original.tensors) {
    if (!reader.contains(key)) continue;
    Tensor got = reader.read(key).contiguous();
    const Tensor want_t = expected.contiguous();
    ASSERT_EQ(got.dtype(), want_t.dtype()) << what << " " << key;
    ASSERT_EQ(got.shape(), want_t.shape()) << what << " " << key;
    EXPECT_EQ(std::memcmp(got.data_ptr(), want_t.data_ptr(), want_t.nbytes()), 0) << what << " " << key;
  }
  for (const auto& [key, expected] : original.values) {
    if (!reader.contains(key)) continue;
    const StateValue got = reader.value(key);
    ASSERT_EQ(got.variant().index(), expected.variant().index()) << what << " " << key;
    if (expected.holds<int64_t>()) EXPECT_EQ(got.as<int64_t>(), expected.as<int64_t>()) << what << " " << key;
    if (expected.holds<double>()) EXPECT_EQ(got.as<double>(), expected.as<double>()) << what << " " << key;
    if (expected.holds<bool>()) EXPECT_EQ(got.as<bool>(), expected.as<bool>()) << what << " " << key;
    if (expected.holds<std::string>()) EXPECT_EQ(got.as<std::string>(), expected.as<std::string>()) << what << " " << key;
  }
}

TEST_F(tools_CliFormats, ConvertNativeToTorchDcpAndBackKeepsEveryTensorAndValue) {
  const std::string native = path("native"), dcp = path("dcp"), back = path("back");
  const OriginalState original = write_mixed_checkpoint(native);

  CliResult r = run({"convert", native, "--to", "torch-dcp", dcp});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "to " + dcp + " (torch-dcp)")) << r.out;
  EXPECT_TRUE(fs::exists(dcp + "/" + std::string(kTorchDcpMetadataName)));
  {
    CheckpointReader reader(std::make_unique<TorchDcpReader>(dcp));
    expect_same_state(reader, original, "torch-dcp");
  }
  // A resharded load through the DCP reader: 2 ranks, net1 sharded by rows.
  run_ranks(2, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {2});
    MLPModule model(Device::kCpu);
    parallelize_module(model, mesh, {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}});
    for (const auto& p : model.parameters()) p->local().fill_(0.0);
    StateDict sd = model.state_dict();
    TorchDcpReader reader(dcp);
    load(sd, reader);
    for (const auto& [name, p] : model.named_parameters()) {
      EXPECT_TRUE(equal(p->dtensor().full_tensor(), original.tensors.at(name))) << name << " on rank " << comm->rank();
    }
  });
  CliResult v = run({"verify", dcp});
  EXPECT_EQ(v.code, kOk) << v.out << v.err;

  CliResult b = run({"convert", dcp, "--to", "dcpp", back});
  ASSERT_EQ(b.code, kOk) << b.out << b.err;
  CheckpointReader reader = open_checkpoint(back);
  expect_same_state(reader, original, "torch-dcp -> dcpp");
  CliResult vb = run({"verify", back});
  EXPECT_EQ(vb.code, kOk) << vb.out << vb.err;
}

TEST_F(tools_CliFormats, ConvertRejectsBadArguments) {
  const std::string native = path("native");
  write_tp_checkpoint(native);
  for (const std::string bad : {"5XB", "GB", "-3", "0", "99999999999999999999"}) {
    CliResult r = run({"convert", native, "--to", "safetensors", "--max-shard-size", bad, path("out")});
    EXPECT_EQ(r.code, kUsage) << bad << "\n" << r.err;
  }
  CliResult to = run({"convert", native, "--to", "onnx", path("out")});
  EXPECT_EQ(to.code, kUsage) << to.err;
  CliResult dcpp_shard = run({"convert", native, "--to", "dcpp", "--max-shard-size", "1MB", path("out")});
  EXPECT_EQ(dcpp_shard.code, kUsage) << dcpp_shard.err;
  CliResult dcp_shard = run({"convert", native, "--to", "torch-dcp", "--torch-compatible", path("out")});
  EXPECT_EQ(dcp_shard.code, kUsage) << dcp_shard.err;
  CliResult missing = run({"convert", path("nothing"), "--to", "dcpp", path("out")});
  EXPECT_EQ(missing.code, kNotCheckpoint) << missing.err;
  EXPECT_TRUE(contains(missing.err, "does not exist")) << missing.err;
  EXPECT_FALSE(fs::exists(path("out")));
}

// `dcpp convert --compress`: the same tensors, stored encoded (format
// version 2); `dcpp verify` decodes every block, and names the file and the
// stored offset of a damaged one.
TEST_F(tools_CliFormats, ConvertCompressRoundTripsAndVerifyDecodesEveryBlock) {
  const std::string plain = path("plain"), packed = path("packed");
  Generator gen(test_seed("CliFormats.ConvertCompress"));
  // Weight-like bf16: small values, so the sign-and-exponent bytes repeat.
  Tensor w = Tensor::uniform({512, 512}, -0.05, 0.05, gen, DType::kBFloat16);
  StateDict sd;
  sd.set("w", w);
  sd.set("step", int64_t{3});
  save(sd, plain);
  CliResult bad = run({"convert", plain, "--to", "safetensors", "--compress", path("out")});
  EXPECT_EQ(bad.code, kUsage) << bad.err;

  CliResult r = run({"convert", plain, "--to", "dcpp", "--compress", packed});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  Metadata md = read_fs_metadata(*default_file_system(), packed);
  EXPECT_EQ(md.format_version, 2u);
  const StorageLocation& loc = md.tensors.at("w").chunks[0].location;
  ASSERT_FALSE(loc.stored_blocks.empty());
  EXPECT_LT(loc.stored_length(), loc.byte_length * 9 / 10);
  CliResult v = run({"verify", packed});
  EXPECT_EQ(v.code, kOk) << v.out << v.err;
  Tensor back = open_checkpoint(packed).read("w");
  EXPECT_EQ(std::memcmp(back.contiguous().data_ptr(), w.data_ptr(), w.nbytes()), 0);

  const StoredBlock& b0 = loc.stored_blocks[0];
  flip_byte(packed + "/" + loc.file, loc.byte_offset + b0.offset + b0.length / 2);
  v = run({"verify", packed});
  EXPECT_EQ(v.code, kProblems) << v.out << v.err;
  EXPECT_TRUE(contains(v.out, packed + "/" + loc.file + ": byte offset " + std::to_string(loc.byte_offset + b0.offset)))
      << v.out;
  EXPECT_TRUE(contains(v.out, "'w'")) << v.out;
}

}  // namespace
}  // namespace dcpp::testing
