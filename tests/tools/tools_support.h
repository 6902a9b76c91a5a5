// Helpers of the tools tests: run the dcpp binary as a real process, write
// a real tensor-parallel checkpoint, damage files at exact byte offsets.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dcpp/checkpoint.h"
#include "dcpp/fs_storage.h"
#include "dcpp/testing/models.h"
#include "dcpp/tp.h"

#ifndef DCPP_CLI_PATH
#error "tests/tools/tests.cmake defines DCPP_CLI_PATH, the path of the built dcpp binary"
#endif

namespace dcpp::testing {

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `dcpp <args...>` with stdout and stderr captured in files under
// `scratch` (stdout is a file, not a terminal: no progress bar).
inline CliResult run_cli(const std::vector<std::string>& args, const std::string& scratch) {
  std::string cmd = shell_quote(DCPP_CLI_PATH);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += shell_quote(a);
  }
  const std::string out = scratch + "/cli.stdout";
  const std::string err = scratch + "/cli.stderr";
  cmd += " > ";
  cmd += shell_quote(out);
  cmd += " 2> ";
  cmd += shell_quote(err);
  cmd += " < /dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// A 3-rank tensor-parallel MLPModule (net1 Colwise, net2 Rowwise) plus two
// values, saved by dcpp::save through the native writer with `block_size`.
// Chunks (independent of dcpp, from the chunk math of docs/design.md §2):
//   net1.weight [16, 10] Shard(0): rows 6, 6, 4  → 3 chunks, 640 bytes
//   net1.bias   [16]     Shard(0): 6, 6, 4       → 3 chunks, 64 bytes
//   net2.weight [10, 16] Shard(1): cols 6, 6, 4  → 3 chunks, 640 bytes
//   net2.bias   [10]     Replicate               → 1 chunk, 40 bytes
//   step (int64 8 bytes), note "hello" (string, 5 bytes)
inline void write_tp_checkpoint(const std::string& dir, uint64_t block_size = kDefaultBlockSize) {
  run_ranks(3, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    MLPModule model(Device::kCpu);
    parallelize_module(model, mesh, {{"net1", ColwiseParallel{}}, {"net2", RowwiseParallel{}}});
    StateDict sd = model.state_dict();
    sd.set("step", StateValue(int64_t{7}));
    sd.set("note", StateValue(std::string("hello")));
    FileSystemWriterOptions options;
    options.block_size = block_size;
    FileSystemWriter writer(dir, options);
    save(sd, writer);
  });
}

inline void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  ASSERT_TRUE(f.good()) << path << " has no byte at offset " << offset;
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Whitespace-separated words of a line.
inline std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> w;
  std::istringstream in(line);
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// The first line of `text` whose first word is `first`.
inline std::string line_starting(const std::string& text, const std::string& first) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto w = words(line);
    if (!w.empty() && w[0] == first) return line;
  }
  return {};
}

}  // namespace dcpp::testing
