// The dcpp command, run as a real process on real checkpoints written by
// dcpp::save: output content and exit codes (docs/cli.md).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "dcpp/checkpoint_manager.h"
#include "dcpp/error.h"
#include "support/distributed.h"
#include "tools/tools_support.h"

namespace dcpp::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kOk = 0, kProblems = 1, kUsage = 2, kNotCheckpoint = 3;

// Literal expectations for write_tp_checkpoint (see tools_support.h).
struct ExpectedKey {
  std::string type;
  std::vector<int64_t> shape;
  uint64_t chunks;
  uint64_t bytes;
};
const std::map<std::string, ExpectedKey> kExpectedTensors = {
    {"net1.weight", {"float32", {16, 10}, 3, 640}},
    {"net1.bias", {"float32", {16}, 3, 64}},
    {"net2.weight", {"float32", {10, 16}, 3, 640}},
    {"net2.bias", {"float32", {10}, 1, 40}},
};
const std::map<std::string, ExpectedKey> kExpectedValues = {
    {"step", {"int64", {}, 1, 8}},
    {"note", {"string", {}, 1, 5}},
};
constexpr uint64_t kExpectedDataBytes = 640 + 64 + 640 + 40 + 8 + 5;

class tools_Cli : public ::testing::Test {
 protected:
  std::string scratch() const { return tmp_.path(); }
  std::string path(const std::string& name) const { return tmp_.path() + "/" + name; }
  CliResult run(const std::vector<std::string>& args) { return run_cli(args, tmp_.path()); }

  TempDir tmp_;
};

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& text) {
  return parser.parse(simdjson::padded_string(text));
}

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

std::vector<int64_t> json_shape(simdjson::dom::element e) {
  std::vector<int64_t> s;
  for (simdjson::dom::element d : e.get_array()) s.push_back(int64_t(d));
  return s;
}

// The problem lines of a verify run, "problem: <file>: byte offset N: message".
std::vector<std::string> problem_lines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("problem: ", 0) == 0) lines.push_back(line);
  }
  return lines;
}

// ---- inspect ----

TEST_F(tools_Cli, InspectTableListsEveryKeyWithDtypeShapeChunksBytesAndFiles) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  CliResult r = run({"inspect", ckpt});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  const std::string all_files = "data-00000.bin,data-00001.bin,data-00002.bin";
  EXPECT_EQ(words(line_starting(r.out, "net1.weight")),
            (std::vector<std::string>{"net1.weight", "float32", "[16,", "10]", "3", "640", "B", all_files}));
  EXPECT_EQ(words(line_starting(r.out, "net1.bias")),
            (std::vector<std::string>{"net1.bias", "float32", "[16]", "3", "64", "B", all_files}));
  EXPECT_EQ(words(line_starting(r.out, "net2.weight")),
            (std::vector<std::string>{"net2.weight", "float32", "[10,", "16]", "3", "640", "B", all_files}));
  auto bias = words(line_starting(r.out, "net2.bias"));
  ASSERT_EQ(bias.size(), 7u) << r.out;
  EXPECT_EQ(std::vector<std::string>(bias.begin(), bias.begin() + 6),
            (std::vector<std::string>{"net2.bias", "float32", "[10]", "1", "40", "B"}));
  EXPECT_TRUE(bias[6].rfind("data-0000", 0) == 0) << bias[6];
  auto step = words(line_starting(r.out, "step"));
  ASSERT_GE(step.size(), 5u) << r.out;
  EXPECT_EQ(std::vector<std::string>(step.begin(), step.begin() + 5),
            (std::vector<std::string>{"step", "int64", "(value)", "1", "8"}));
  auto note = words(line_starting(r.out, "note"));
  ASSERT_GE(note.size(), 5u) << r.out;
  EXPECT_EQ(std::vector<std::string>(note.begin(), note.begin() + 5),
            (std::vector<std::string>{"note", "string", "(value)", "1", "5"}));

  // The summary.
  EXPECT_TRUE(contains(r.out, "state        complete")) << r.out;
  EXPECT_TRUE(contains(r.out, "world size   3 ranks at save")) << r.out;
  EXPECT_TRUE(contains(r.out, "format       dcpp, version 1")) << r.out;
  EXPECT_TRUE(contains(r.out, "keys         4 tensors, 2 values")) << r.out;
  EXPECT_TRUE(contains(r.out, "(1397 bytes)")) << r.out;
  uint64_t on_disk = 0;
  for (const auto& e : fs::directory_iterator(ckpt)) on_disk += fs::file_size(e.path());
  EXPECT_TRUE(contains(r.out, "in 4 files")) << r.out;
  EXPECT_GT(on_disk, kExpectedDataBytes);
}

TEST_F(tools_Cli, InspectJsonHasTheDocumentedFields) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  CliResult r = run({"inspect", ckpt, "--json"});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.out);
  EXPECT_EQ(std::string_view(doc["path"]), ckpt);
  EXPECT_EQ(std::string_view(doc["format"]), "dcpp");
  EXPECT_EQ(int64_t(doc["format_version"]), 1);
  EXPECT_EQ(std::string_view(doc["state"]), "complete");
  EXPECT_TRUE(bool(doc["complete"]));
  EXPECT_EQ(int64_t(doc["world_size"]), 3);
  EXPECT_EQ(int64_t(doc["block_size"]), 1 << 20);
  EXPECT_EQ(uint64_t(doc["data_bytes"]), kExpectedDataBytes);
  uint64_t on_disk = 0;
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(ckpt)) {
    on_disk += fs::file_size(e.path());
    names.insert(e.path().filename().string());
  }
  EXPECT_EQ(uint64_t(doc["total_bytes"]), on_disk);
  std::set<std::string> json_names;
  for (simdjson::dom::element f : doc["files"].get_array()) {
    std::string name = str(f["name"]);
    json_names.insert(name);
    EXPECT_EQ(uint64_t(f["bytes"]), fs::file_size(ckpt + "/" + name));
  }
  EXPECT_EQ(json_names, names);

  std::map<std::string, ExpectedKey> tensors;
  for (simdjson::dom::element t : doc["tensors"].get_array()) {
    std::string key = str(t["key"]);
    tensors[key] = {str(t["dtype"]), json_shape(t["shape"]), uint64_t(t["chunks"]),
                    uint64_t(t["bytes"])};
    EXPECT_GE(t["files"].get_array().size(), 1u);
  }
  ASSERT_EQ(tensors.size(), kExpectedTensors.size());
  for (const auto& [key, e] : kExpectedTensors) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(tensors.count(key));
    EXPECT_EQ(tensors[key].type, e.type);
    EXPECT_EQ(tensors[key].shape, e.shape);
    EXPECT_EQ(tensors[key].chunks, e.chunks);
    EXPECT_EQ(tensors[key].bytes, e.bytes);
  }
  std::map<std::string, std::pair<std::string, uint64_t>> values;
  for (simdjson::dom::element v : doc["values"].get_array()) {
    values[str(v["key"])] = {str(v["kind"]), uint64_t(v["bytes"])};
  }
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values["step"], (std::pair<std::string, uint64_t>{"int64", 8}));
  EXPECT_EQ(values["note"], (std::pair<std::string, uint64_t>{"string", 5}));
  EXPECT_TRUE(doc["metadata"].error() == simdjson::NO_SUCH_FIELD);

  // --full adds the complete metadata: every chunk of every tensor.
  r = run({"inspect", ckpt, "--json", "--full"});
  ASSERT_EQ(r.code, kOk) << r.err;
  simdjson::dom::parser parser2;
  simdjson::dom::element full = parse(parser2, r.out);
  EXPECT_TRUE(full["metadata"].error() == simdjson::SUCCESS) << r.out;
}

TEST_F(tools_Cli, InspectIncompleteCheckpointSaysSoAndFails) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  fs::remove(ckpt + "/dcpp.metadata");
  CliResult r = run({"inspect", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "INCOMPLETE")) << r.out;
  EXPECT_TRUE(contains(r.out, "data-00000.bin")) << r.out;
  EXPECT_TRUE(contains(r.err, "incomplete checkpoint")) << r.err;

  r = run({"inspect", ckpt, "--json"});
  EXPECT_EQ(r.code, kProblems);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.out);
  EXPECT_EQ(std::string_view(doc["state"]), "incomplete");
  EXPECT_FALSE(bool(doc["complete"]));
  EXPECT_EQ(doc["files"].get_array().size(), 3u);
  EXPECT_EQ(doc["tensors"].get_array().size(), 0u);
}

TEST_F(tools_Cli, InspectDamagedMetadataFailsWithItsOffset) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  flip_byte(ckpt + "/dcpp.metadata", 40);
  CliResult r = run({"inspect", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "dcpp.metadata")) << r.err;
  EXPECT_TRUE(contains(r.err, "checksum mismatch")) << r.err;
}

TEST_F(tools_Cli, NotACheckpointAndMissingPathsHaveTheirOwnExitCode) {
  const std::string plain = path("plain");
  fs::create_directories(plain);
  std::ofstream(plain + "/notes.txt") << "not a checkpoint\n";
  for (const char* cmd : {"inspect", "verify"}) {
    SCOPED_TRACE(cmd);
    CliResult r = run({cmd, plain});
    EXPECT_EQ(r.code, kNotCheckpoint) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "is not a checkpoint")) << r.err;
    EXPECT_TRUE(contains(r.err, plain)) << r.err;

    r = run({cmd, path("nothing-here")});
    EXPECT_EQ(r.code, kNotCheckpoint) << r.err;
    EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;

    r = run({cmd, plain + "/notes.txt"});
    EXPECT_EQ(r.code, kNotCheckpoint) << r.err;
    EXPECT_TRUE(contains(r.err, "is not a checkpoint: it is a file")) << r.err;

    fs::create_directories(path("empty"));
    r = run({cmd, path("empty")});
    EXPECT_EQ(r.code, kNotCheckpoint) << r.err;
    EXPECT_TRUE(contains(r.err, "empty directory")) << r.err;
  }
}

TEST_F(tools_Cli, InspectOnAManagerRootPointsToLs) {
  const std::string root = path("run");
  CheckpointManager manager(root);
  StateDict sd{{"w", Tensor::arange(4)}};
  manager.save(3, sd);
  CliResult r = run({"inspect", root});
  EXPECT_EQ(r.code, kNotCheckpoint);
  EXPECT_TRUE(contains(r.err, "checkpoint root")) << r.err;
  EXPECT_TRUE(contains(r.err, "dcpp ls")) << r.err;
  // The metadata file stands for its checkpoint.
  r = run({"inspect", root + "/step-000003/dcpp.metadata"});
  EXPECT_EQ(r.code, kOk) << r.err;
  EXPECT_EQ(words(line_starting(r.out, "w")), (std::vector<std::string>{"w", "float32", "[4]", "1", "16", "B",
                                                                        "data-00000.bin"}));
}

// ---- verify ----

TEST_F(tools_Cli, VerifyCleanCheckpointPasses) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt, /*block_size=*/64);
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kOk) << r.out << r.err;
  EXPECT_TRUE(problem_lines(r.out).empty()) << r.out;
  EXPECT_TRUE(contains(r.out, "OK: 4 tensors (10 chunks), 2 values, 3 data files")) << r.out;
  EXPECT_TRUE(contains(r.out, "1.4 KiB verified")) << r.out;  // 1397 bytes
  EXPECT_FALSE(contains(r.out, "\r")) << "no progress bar when stdout is not a terminal";

  r = run({"verify", ckpt, "--json"});
  EXPECT_EQ(r.code, kOk);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.out);
  EXPECT_TRUE(bool(doc["ok"]));
  EXPECT_EQ(uint64_t(doc["bytes_verified"]), kExpectedDataBytes);
  EXPECT_EQ(uint64_t(doc["tensors"]), 4u);
  EXPECT_EQ(uint64_t(doc["values"]), 2u);
  EXPECT_EQ(uint64_t(doc["chunks"]), 10u);
  EXPECT_EQ(uint64_t(doc["files"]), 3u);
  EXPECT_EQ(doc["problems"].get_array().size(), 0u);
}

// A flipped byte in a data block: verify names the file and the byte offset
// of the damaged checksum block, and keeps going to the next problem.
TEST_F(tools_Cli, VerifyReportsEachFlippedByteWithFileAndBlockOffset) {
  const std::string ckpt = path("ckpt");
  constexpr uint64_t kBlock = 64;
  write_tp_checkpoint(ckpt, kBlock);
  Metadata md = read_fs_metadata(*default_file_system(), ckpt);
  // net1.weight rows [6, 12) (240 bytes: blocks of 64 at +0, +64, +128, +192)
  // and net2.weight columns [12, 16) (160 bytes), wherever the writer put them.
  const StorageLocation* w1 = nullptr;
  const StorageLocation* w2 = nullptr;
  for (const auto& c : md.tensors.at("net1.weight").chunks) {
    if (c.offsets == Shape{6, 0}) w1 = &c.location;
  }
  for (const auto& c : md.tensors.at("net2.weight").chunks) {
    if (c.offsets == Shape{0, 12}) w2 = &c.location;
  }
  ASSERT_TRUE(w1 && w2);
  ASSERT_EQ(w1->byte_length, 240u);
  ASSERT_EQ(w2->byte_length, 160u);
  flip_byte(ckpt + "/" + w1->file, w1->byte_offset + 130);  // block 2
  flip_byte(ckpt + "/" + w2->file, w2->byte_offset + 5);    // block 0

  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  auto problems = problem_lines(r.out);
  ASSERT_EQ(problems.size(), 2u) << r.out;
  const std::string first = ckpt + "/" + w1->file + ": byte offset " + std::to_string(w1->byte_offset + 128) + ":";
  const std::string second = ckpt + "/" + w2->file + ": byte offset " + std::to_string(w2->byte_offset) + ":";
  auto has = [&](const std::string& prefix, const std::string& key) {
    return std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
      return contains(p, prefix) && contains(p, "checksum mismatch") && contains(p, "'" + key + "'");
    });
  };
  EXPECT_TRUE(has(first, "net1.weight")) << r.out;
  EXPECT_TRUE(has(second, "net2.weight")) << r.out;
  EXPECT_TRUE(contains(r.out, "FAILED: 2 problems")) << r.out;

  r = run({"verify", ckpt, "--json"});
  EXPECT_EQ(r.code, kProblems);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.out);
  EXPECT_FALSE(bool(doc["ok"]));
  std::set<std::pair<std::string, uint64_t>> where;
  for (simdjson::dom::element p : doc["problems"].get_array()) {
    where.insert({str(p["file"]), uint64_t(p["offset"])});
  }
  EXPECT_EQ(where, (std::set<std::pair<std::string, uint64_t>>{{ckpt + "/" + w1->file, w1->byte_offset + 128},
                                                               {ckpt + "/" + w2->file, w2->byte_offset}}));
}

void rewrite_metadata(const std::string& ckpt, const Metadata& md) {
  std::vector<std::byte> bytes = encode_metadata(md);
  std::ofstream out(ckpt + "/dcpp.metadata", std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Metadata that decodes (its self-checksum is right) but describes chunks
// that overlap and leave a gap: each problem is reported.
TEST_F(tools_Cli, VerifyReportsOverlapAndMissingCoverage) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  Metadata md = read_fs_metadata(*default_file_system(), ckpt);
  for (auto& c : md.tensors.at("net1.weight").chunks) {
    if (c.offsets == Shape{6, 0}) c.offsets = {4, 0};  // rows 4..10 overlap rows 0..6
  }
  auto& bias = md.tensors.at("net1.bias").chunks;
  bias.erase(std::remove_if(bias.begin(), bias.end(), [](const ChunkMeta& c) { return c.offsets == Shape{12}; }),
             bias.end());
  ASSERT_EQ(bias.size(), 2u);
  rewrite_metadata(ckpt, md);
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  const std::string meta = "problem: " + ckpt + "/dcpp.metadata: ";
  EXPECT_EQ(problem_lines(r.out),
            (std::vector<std::string>{
                meta + "key 'net1.bias': the chunks cover 12 of the 16 elements of shape [16] (some of the tensor was "
                       "not saved)",
                meta + "key 'net1.weight': chunk at [0, 0] of size [6, 10] overlaps chunk at [4, 0] of size [6, 10]",
            }))
      << r.out;
}

// A chunk outside its tensor is refused by the metadata decoder itself,
// which names the byte offset in the metadata file.
TEST_F(tools_Cli, VerifyReportsAChunkOutOfBounds) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  Metadata md = read_fs_metadata(*default_file_system(), ckpt);
  for (auto& c : md.tensors.at("net1.bias").chunks) {
    if (c.offsets == Shape{12}) c.offsets = {14};  // 14 + 4 > 16
  }
  rewrite_metadata(ckpt, md);
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  auto problems = problem_lines(r.out);
  ASSERT_EQ(problems.size(), 1u) << r.out;
  EXPECT_TRUE(contains(problems[0], ckpt + "/dcpp.metadata")) << problems[0];
  EXPECT_TRUE(contains(problems[0], "byte offset")) << problems[0];
  EXPECT_TRUE(contains(problems[0], "net1.bias")) << problems[0];
  EXPECT_TRUE(contains(problems[0], "[14]")) << problems[0];
}

TEST_F(tools_Cli, VerifyReportsATruncatedDataFile) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  Metadata md = read_fs_metadata(*default_file_system(), ckpt);
  const std::string victim = "data-00002.bin";
  constexpr uint64_t kCut = 100;
  // Every item of the file that ends past the cut is reported, at the cut
  // or at its own start when it starts past the cut.
  std::set<uint64_t> expected_offsets;
  auto expect = [&](const StorageLocation& loc) {
    if (loc.file == victim && loc.byte_offset + loc.byte_length > kCut) {
      expected_offsets.insert(std::max(kCut, loc.byte_offset));
    }
  };
  for (const auto& [k, t] : md.tensors) {
    for (const auto& c : t.chunks) expect(c.location);
  }
  for (const auto& [k, v] : md.values) expect(v.location);
  ASSERT_FALSE(expected_offsets.empty());
  fs::resize_file(ckpt + "/" + victim, kCut);

  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  auto problems = problem_lines(r.out);
  ASSERT_EQ(problems.size(), expected_offsets.size()) << r.out;
  for (uint64_t off : expected_offsets) {
    const std::string prefix = "problem: " + ckpt + "/" + victim + ": byte offset " + std::to_string(off) + ": file too short";
    EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [&](const std::string& p) { return p.rfind(prefix, 0) == 0; }))
        << prefix << "\n" << r.out;
  }
}

TEST_F(tools_Cli, VerifyReportsMissingDataFileAndDamagedMetadata) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  fs::remove(ckpt + "/data-00001.bin");
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out;
  EXPECT_TRUE(contains(r.out, "problem: " + ckpt + "/data-00001.bin: missing")) << r.out;

  const std::string ckpt2 = path("ckpt2");
  write_tp_checkpoint(ckpt2);
  flip_byte(ckpt2 + "/dcpp.metadata", 30);
  r = run({"verify", ckpt2});
  EXPECT_EQ(r.code, kProblems) << r.out;
  auto problems = problem_lines(r.out);
  ASSERT_EQ(problems.size(), 1u) << r.out;
  EXPECT_TRUE(contains(problems[0], ckpt2 + "/dcpp.metadata")) << problems[0];
  EXPECT_TRUE(contains(problems[0], "checksum mismatch")) << problems[0];
}

TEST_F(tools_Cli, VerifyIncompleteCheckpointFails) {
  const std::string ckpt = path("ckpt");
  write_tp_checkpoint(ckpt);
  fs::remove(ckpt + "/dcpp.metadata");
  CliResult r = run({"verify", ckpt});
  EXPECT_EQ(r.code, kProblems) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "incomplete")) << r.out;
  EXPECT_EQ(problem_lines(r.out).size(), 1u) << r.out;
}

// ---- ls ----

TEST_F(tools_Cli, LsListsStepsWithStateSizeAndTime) {
  const std::string root = path("run");
  CheckpointManager manager(root);
  for (int64_t step : {10, 20, 30}) {
    StateDict sd{{"w", Tensor::full({256}, static_cast<double>(step))}};  // 1024 bytes of data
    manager.save(step, sd);
  }
  fs::remove(root + "/step-000030/dcpp.metadata");
  fs::create_directories(root + "/.step-000040.dcpp-staging");
  CliResult r = run({"ls", root});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  auto row10 = words(line_starting(r.out, "10"));
  auto row30 = words(line_starting(r.out, "30"));
  ASSERT_EQ(row10.size(), 7u) << r.out;  // 10 step-000010 complete 1.x KiB YYYY-MM-DD HH:MM:SS
  EXPECT_EQ(row10[1], "step-000010");
  EXPECT_EQ(row10[2], "complete");
  EXPECT_EQ(row10[4], "KiB");  // 1024 bytes of data + the metadata file
  EXPECT_EQ(row10[5].size(), 10u);
  EXPECT_EQ(row10[5][4], '-');
  ASSERT_EQ(row30.size(), 7u) << r.out;
  EXPECT_EQ(row30[2], "incomplete");
  EXPECT_EQ(row30[3] + " " + row30[4], "1.0 KiB");  // the data file alone: 1024 bytes
  EXPECT_TRUE(contains(r.out, "3 steps (2 complete)")) << r.out;
  EXPECT_TRUE(contains(r.out, "latest complete step: 20")) << r.out;
  EXPECT_TRUE(contains(r.out, ".step-000040.dcpp-staging")) << r.out;

  r = run({"ls", root, "--json"});
  ASSERT_EQ(r.code, kOk);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse(parser, r.out);
  std::vector<std::pair<int64_t, std::string>> steps;
  for (simdjson::dom::element s : doc["steps"].get_array()) {
    steps.push_back({int64_t(s["step"]), str(s["state"])});
    if (int64_t(s["step"]) == 30) {
      EXPECT_EQ(uint64_t(s["bytes"]), 1024u);
    }
    EXPECT_GT(int64_t(s["mtime"]), 0);
  }
  EXPECT_EQ(steps, (std::vector<std::pair<int64_t, std::string>>{{10, "complete"}, {20, "complete"}, {30, "incomplete"}}));
  EXPECT_EQ(int64_t(doc["latest_complete_step"]), 20);

  r = run({"ls", path("no-such-root")});
  EXPECT_EQ(r.code, kNotCheckpoint);
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
  r = run({"ls", root + "/step-000010"});
  EXPECT_EQ(r.code, kNotCheckpoint);
  EXPECT_TRUE(contains(r.err, "dcpp inspect")) << r.err;
}

// ---- usage, help, demo ----

TEST_F(tools_Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run({}).code, kUsage);
  EXPECT_EQ(run({"frobnicate"}).code, kUsage);
  CliResult r = run({"inspect"});
  EXPECT_EQ(r.code, kUsage);
  EXPECT_TRUE(contains(r.err + r.out, "checkpoint")) << r.err;
  EXPECT_EQ(run({"verify", "--no-such-flag", scratch()}).code, kUsage);
  EXPECT_EQ(run({"ls"}).code, kUsage);
}

TEST_F(tools_Cli, EverySubcommandHasHelp) {
  for (const char* cmd : {"inspect", "verify", "ls", "convert", "bench", "demo"}) {
    SCOPED_TRACE(cmd);
    CliResult r = run({cmd, "--help"});
    EXPECT_EQ(r.code, kOk) << r.err;
    EXPECT_TRUE(contains(r.out, "Usage")) << r.out;
    EXPECT_TRUE(contains(r.out, cmd)) << r.out;
  }
  CliResult r = run({"--help"});
  EXPECT_EQ(r.code, kOk);
  for (const char* cmd : {"inspect", "verify", "ls", "convert", "bench", "demo"}) {
    EXPECT_TRUE(contains(r.out, cmd)) << r.out;
  }
  EXPECT_TRUE(contains(r.out, "Exit codes")) << r.out;
}

// `dcpp bench` on a tiny model: every figure is there, every load verified
// its data, and the byte counts match the model's shapes (per layer: bf16
// qkv [3h,h] and out [h,h]; fp32 up [4h,h] + [4h], down [h,4h] + [h], norm [h]).
TEST_F(tools_Cli, BenchMeasuresEveryFigureAndVerifiesEveryLoad) {
  const int64_t h = 64, layers = 2;
  CliResult r = run({"bench", "--layers", std::to_string(layers), "--hidden", std::to_string(h), "--ranks", "3",
                     "--runs", "1", "--json", "--dir", path("bench-data")});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  simdjson::dom::parser parser;
  auto doc = parse(parser, r.out);
  const uint64_t checkpoint_bytes = static_cast<uint64_t>(layers * (40 * h * h + 24 * h));
  EXPECT_EQ(uint64_t(doc["checkpoint_bytes"]), checkpoint_bytes);
  EXPECT_EQ(int64_t(doc["world"]), 3);
  auto figures = doc["figures"];
  for (const char* name : {"raw_write", "raw_read", "save", "async_save_first_call_blocking", "async_reserve",
                           "async_save_first_call_after_reserve_blocking", "async_save_blocking", "memcpy_state"}) {
    SCOPED_TRACE(name);
    EXPECT_GT(double(figures[name]["seconds"]), 0.0);
  }
  // Save and loads carry one ratio per run against their own raw baseline.
  for (const char* name : {"save", "load_same", "load_to_double_transposed"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(figures[name]["ratio_samples"].get_array().size(), 1u);
    EXPECT_GT(double(figures[name]["ratio"]), 0.0);
  }
  EXPECT_EQ(uint64_t(figures["save"]["bytes"]), checkpoint_bytes);
  const std::pair<const char*, int64_t> loads[] = {{"load_same", 3},
                                                   {"load_to_half_model_layout", 1},
                                                   {"load_to_half_transposed", 1},
                                                   {"load_to_double_model_layout", 6},
                                                   {"load_to_double_transposed", 6}};
  for (const auto& [name, ranks] : loads) {
    SCOPED_TRACE(name);
    auto f = figures[name];
    EXPECT_EQ(str(f["note"]), "verified");
    EXPECT_EQ(int64_t(f["ranks"]), ranks);
    EXPECT_EQ(uint64_t(f["bytes"]), checkpoint_bytes);
    EXPECT_GE(uint64_t(f["disk_bytes_read"]), checkpoint_bytes);
  }
  EXPECT_FALSE(std::filesystem::exists(path("bench-data"))) << "the benchmark leaves its files behind";
  EXPECT_EQ(run({"bench", "--ranks", "0"}).code, kUsage);
}

// `dcpp demo` at a tiny size: the resumed run's losses (from the checkpoint,
// on TP=2) must equal, digit for digit, those of the run that never went
// through the disk, and the demo must say so, exit 0 and leave nothing behind.
TEST_F(tools_Cli, DemoResumesBitForBitAtTinySize) {
  const int steps = 2;
  CliResult r = run({"demo", "--layers", "2", "--hidden", "24", "--steps", std::to_string(steps), "--tokens", "3",
                     "--dir", scratch()});
  ASSERT_EQ(r.code, kOk) << r.out << r.err;
  // The side-by-side rows: "<step> <resumed loss> <uninterrupted loss> identical".
  int rows = 0;
  for (int s = steps + 1; s <= 2 * steps; ++s) {
    const std::vector<std::string> w = words(line_starting(r.out, std::to_string(s)));
    ASSERT_EQ(w.size(), 4u) << "no row for step " << s << " in:\n" << r.out;
    EXPECT_EQ(w[1], w[2]) << "step " << s;
    EXPECT_GT(std::stod(w[1]), 0.0);
    EXPECT_EQ(w[3], "identical");
    ++rows;
  }
  EXPECT_EQ(rows, steps);
  EXPECT_TRUE(contains(r.out, "identical on every rank")) << r.out;
  EXPECT_TRUE(contains(r.out, "$ dcpp inspect ")) << r.out;
  EXPECT_TRUE(contains(r.out, "serving_bf16.layers.1.up_proj.weight")) << r.out;
  EXPECT_TRUE(contains(r.out, "$ dcpp verify ")) << r.out;
  EXPECT_TRUE(contains(r.out, "OK: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "demo passed")) << r.out;
  EXPECT_TRUE(fs::is_empty(scratch())) << "the demo leaves its checkpoint behind";
  EXPECT_EQ(run({"demo", "--layers", "0"}).code, kUsage);
}

}  // namespace
}  // namespace dcpp::testing
