// Private to the checkpoint layer: the byte form of what save() and load()
// exchange between ranks (plans, write results, failures). Native-endian:
// every rank of a job runs the same build on the same kind of host.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/planner.h"

namespace dcpp::detail {

class WireWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u64(uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void str(const std::string& s) {
    u64(s.size());
    out_ += s;
  }
  void shape(const Shape& s) {
    u64(s.size());
    for (int64_t v : s) i64(v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class WireReader {
 public:
  explicit WireReader(const std::string& in) : in_(in) {}
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::copy_n(in_.data() + pos_, 8, reinterpret_cast<char*>(&v));
    pos_ += 8;
    return v;
  }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  std::string str() {
    uint64_t n = u64();
    need(n);
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  Shape shape() {
    uint64_t n = u64();
    need(n * 8);
    Shape s(n);
    for (auto& v : s) v = i64();
    return s;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  void need(uint64_t n) const {
    if (n > in_.size() - pos_) throw Error(ErrorCode::kInternal, "truncated message between ranks");
  }
  const std::string& in_;
  size_t pos_ = 0;
};

// One rank's failure.
struct RankFailure {
  int rank = 0;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

void write_failures(WireWriter& w, const std::vector<RankFailure>& failures);
std::vector<RankFailure> read_failures(WireReader& r);

void write_save_plan(WireWriter& w, const SavePlan& plan);
SavePlan read_save_plan(WireReader& r);

void write_results(WireWriter& w, const std::vector<WriteResult>& results);
std::vector<WriteResult> read_results(WireReader& r);

}  // namespace dcpp::detail
