// inspect_checkpoint() and verify_checkpoint(): detection, then the
// detected format's inspector, with every verify problem collected.
#include "dcpp/error.h"
#include "dcpp/inspect.h"

namespace dcpp {
namespace {

Detection require_checkpoint(const std::string& path) {
  Detection d = detect_checkpoint(path);
  if (d.kind == Detection::kMissing) throw Error(ErrorCode::kNotFound, d.message);
  if (d.kind == Detection::kNotCheckpoint) throw Error(ErrorCode::kInvalidArgument, d.message);
  return d;
}

// Keeps every problem in the report and passes everything on to `next`.
class CollectingReporter final : public VerifyReporter {
 public:
  CollectingReporter(VerifyReport& report, VerifyReporter* next) : report_(report), next_(next) {}
  void problem(const std::string& file, int64_t offset, const std::string& message) override {
    report_.problems.push_back({file, offset, message});
    if (next_) next_->problem(file, offset, message);
  }
  void io_error(const std::string& message) override {
    report_.io_errors.push_back(message);
    if (next_) next_->io_error(message);
  }
  void begin_data(uint64_t total_bytes) override {
    if (next_) next_->begin_data(total_bytes);
  }
  void data_verified(uint64_t bytes) override {
    if (next_) next_->data_verified(bytes);
  }

 private:
  VerifyReport& report_;
  VerifyReporter* next_;
};

}  // namespace

CheckpointSummary inspect_checkpoint(const std::string& path) {
  const Detection d = require_checkpoint(path);
  return d.format->summarize(d.path, d.complete);
}

VerifyReport verify_checkpoint(const Detection& detection, VerifyReporter* progress) {
  if (detection.kind != Detection::kFound) {
    throw Error(ErrorCode::kInvalidArgument, "verify_checkpoint: " + detection.message);
  }
  VerifyReport report;
  report.path = detection.path;
  report.format = detection.format->name();
  report.complete = detection.complete;
  report.checksummed = detection.format->checksummed();
  CollectingReporter collect(report, progress);
  report.totals = detection.format->verify(detection.path, detection.complete, collect);
  return report;
}

VerifyReport verify_checkpoint(const std::string& path, VerifyReporter* progress) {
  return verify_checkpoint(require_checkpoint(path), progress);
}

}  // namespace dcpp
