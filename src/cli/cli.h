// Private to the dcpp command: exit codes, the subcommands' entry points and
// the presentation helpers they share (sizes, rates, times, a progress bar
// that only draws on a terminal, a small JSON writer). docs/cli.md is the
// user-facing description of all of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dcpp/error.h"

namespace dcpp::cli {

// Documented in docs/cli.md; scripts depend on them, so they never change meaning.
inline constexpr int kExitOk = 0;
inline constexpr int kExitProblems = 1;       // problems found, checkpoint corrupt or incomplete
inline constexpr int kExitUsage = 2;          // bad command line
inline constexpr int kExitNotCheckpoint = 3;  // not a checkpoint, or nothing at the path
inline constexpr int kExitIo = 4;             // the operating system refused a read

// The exit code for an Error that ends a subcommand.
int exit_code_for(const Error& error);

struct InspectArgs {
  std::string path;
  bool json = false;
  bool full = false;  // --json: add the complete metadata under "metadata"
};
struct VerifyArgs {
  std::string path;
  bool json = false;
  bool quiet = false;  // no progress bar even on a terminal
};
struct LsArgs {
  std::string root;
  bool json = false;
};
struct ConvertArgs {
  std::string src;
  std::string to;              // "safetensors", "torch-dcp" or "dcpp"
  std::string max_shard_size;  // "" = one file; "5GB", "500MiB", "1024"
  bool torch_compatible = false;
  bool compress = false;  // dcpp: store blocks encoded where smaller (format version 2)
  std::string dst;
};
struct DemoArgs {
  int layers = 8;         // GPTModel blocks: the default model holds 1.0 GiB of fp32 parameters
  int64_t hidden = 2048;  // the MLP's inner size is 4 × hidden
  int steps = 3;          // training steps before the save, and again after the resume
  int tokens = 4;         // rows of the training batch
  std::string dir;        // where the temporary checkpoint directory goes ("": the system's temp directory)
};

int run_inspect(const InspectArgs& args);
int run_verify(const VerifyArgs& args);
int run_ls(const LsArgs& args);
int run_convert(const ConvertArgs& args);
int run_demo(const DemoArgs& args);

// "5GB" (10^9), "500MiB" (2^20), "1024" → bytes; units are case-insensitive
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB). nullopt when malformed or overflowing.
std::optional<uint64_t> parse_size(const std::string& text);

// ---- presentation ----

// "512 B", "1.5 KiB", "23.4 MiB", "1.2 GiB" (binary units).
std::string human_bytes(uint64_t bytes);
// "850.3 MiB/s"; "-" when the time is too short to measure.
std::string human_rate(uint64_t bytes, double seconds);
// Local time "2024-11-28 18:40:12"; "-" for 0 (unknown).
std::string human_time(int64_t unix_seconds);
std::string shape_text(const std::vector<int64_t>& shape);  // "[16, 10]", "[]" for a scalar

// Left-aligned columns, each as wide as its widest cell; numeric columns
// (right_aligned) line up on the right.
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> right_aligned = {});
  void add(std::vector<std::string> row);
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

// A progress line on stdout, drawn only when stdout is a terminal (and not
// quiet); otherwise every call is a no-op, so piped output stays clean.
class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  ~Progress();
  bool enabled() const { return enabled_; }
  void add(uint64_t bytes);
  // Erases the line, so that a message can be printed; the next add() redraws.
  void clear();

 private:
  void draw();

  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};
// True when stdout is a terminal.
bool stdout_is_terminal();

// Minimal streaming JSON writer: objects, arrays, strings, numbers, booleans.
class Json {
 public:
  Json& begin_object();
  Json& end_object();
  Json& begin_array();
  Json& end_array();
  Json& key(std::string_view k);
  Json& value(std::string_view v);
  Json& value(const char* v) { return value(std::string_view(v)); }
  Json& value(const std::string& v) { return value(std::string_view(v)); }
  Json& value(uint64_t v);
  Json& value(int64_t v);
  Json& value(int v) { return value(static_cast<int64_t>(v)); }
  Json& value(double v);
  Json& value(bool v);
  Json& null();
  // A value already rendered as JSON (e.g. metadata_to_json's output).
  Json& raw(std::string_view json);
  Json& shape(const std::vector<int64_t>& s);
  std::string str() const { return out_ + "\n"; }

 private:
  void separator();
  void newline();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace dcpp::cli
