// `dcpp verify`: every checksum and structural invariant, every problem reported.
#include <chrono>
#include <cstdio>

#include "cli/cli.h"
#include "dcpp/inspect.h"

namespace dcpp::cli {
namespace {

// Prints problems as they are found (unless --json) and keeps the progress
// line out of their way; verify_checkpoint collects them for the summary.
class Printer final : public VerifyReporter {
 public:
  Printer(bool json, bool progress) : json_(json), progress_enabled_(progress && !json) {}

  void problem(const std::string& file, int64_t offset, const std::string& message) override {
    if (json_) return;
    if (progress_) progress_->clear();
    std::string where = file.empty() ? "" : file + ": ";
    if (offset >= 0) where += "byte offset " + std::to_string(offset) + ": ";
    std::printf("problem: %s%s\n", where.c_str(), message.c_str());
    std::fflush(stdout);
  }
  void io_error(const std::string& message) override {
    if (json_) return;
    if (progress_) progress_->clear();
    std::printf("error: %s\n", message.c_str());
    std::fflush(stdout);
  }
  void begin_data(uint64_t total_bytes) override {
    progress_.emplace("verifying", total_bytes, progress_enabled_);
  }
  void data_verified(uint64_t bytes) override {
    if (progress_) progress_->add(bytes);
  }
  void finish() {
    if (progress_) progress_->clear();
  }

 private:
  bool json_;
  bool progress_enabled_;
  std::optional<Progress> progress_;
};

std::string count(uint64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

}  // namespace

int run_verify(const VerifyArgs& args) {
  Detection d = detect_checkpoint(args.path);
  if (d.kind != Detection::kFound) {
    std::fprintf(stderr, "dcpp verify: %s\n", d.message.c_str());
    return kExitNotCheckpoint;
  }
  Printer printer(args.json, !args.quiet && stdout_is_terminal());
  if (!args.json) {
    std::printf("verifying %s (%s checkpoint%s)\n", d.path.c_str(), d.format->name().c_str(),
                d.complete ? "" : ", incomplete");
  }
  const auto start = std::chrono::steady_clock::now();
  const VerifyReport report = verify_checkpoint(d, &printer);
  printer.finish();
  const VerifyTotals& totals = report.totals;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const bool ok = report.problems.empty() && report.io_errors.empty();
  const int code = !report.io_errors.empty() ? kExitIo : (!report.problems.empty() ? kExitProblems : kExitOk);
  if (args.json) {
    Json j;
    j.begin_object();
    j.key("path").value(d.path);
    j.key("format").value(d.format->name());
    j.key("complete").value(d.complete);
    j.key("checksums").value(report.checksummed);
    j.key("ok").value(ok);
    j.key("exit_code").value(code);
    j.key("tensors").value(totals.tensors);
    j.key("values").value(totals.values);
    j.key("chunks").value(totals.chunks);
    j.key("files").value(totals.files);
    j.key("bytes_verified").value(totals.bytes_verified);
    j.key("seconds").value(seconds);
    j.key("problems").begin_array();
    for (const auto& p : report.problems) {
      j.begin_object().key("file").value(p.file);
      j.key("offset");
      if (p.offset >= 0) {
        j.value(p.offset);
      } else {
        j.null();
      }
      j.key("message").value(p.message).end_object();
    }
    j.end_array();
    j.key("io_errors").begin_array();
    for (const auto& e : report.io_errors) j.value(e);
    j.end_array();
    j.end_object();
    std::fputs(j.str().c_str(), stdout);
    return code;
  }
  const bool checksummed = report.checksummed;
  if (ok) {
    std::printf("OK: %s (%s), %s, %s; %s %s in %.2f s (%s)%s\n", count(totals.tensors, "tensor").c_str(),
                count(totals.chunks, "chunk").c_str(), count(totals.values, "value").c_str(),
                count(totals.files, "data file").c_str(), human_bytes(totals.bytes_verified).c_str(),
                checksummed ? "verified" : "read", seconds, human_rate(totals.bytes_verified, seconds).c_str(),
                checksummed ? "" : "; structure checked, every tensor read, no checksums in this format");
  } else {
    std::printf("FAILED: %zu problem%s", report.problems.size(), report.problems.size() == 1 ? "" : "s");
    if (!report.io_errors.empty()) {
      std::printf(" and %zu I/O error%s (verification could not read everything)", report.io_errors.size(),
                  report.io_errors.size() == 1 ? "" : "s");
    }
    std::printf(" in %s; %s of data verified\n", d.path.c_str(), human_bytes(totals.bytes_verified).c_str());
  }
  return code;
}

}  // namespace dcpp::cli
